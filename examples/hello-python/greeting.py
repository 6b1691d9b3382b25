GREETING = "Hello from Hangar! v1"
