/** Migrations of the accounts component: organizations, apps, API tokens. */
export const accountsMigrations = [
  `CREATE TABLE orgs (
     id TEXT PRIMARY KEY,
     slug TEXT NOT NULL UNIQUE,
     name TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE apps (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     org_id TEXT NOT NULL REFERENCES orgs(id),
     created_at TEXT NOT NULL
   );
   CREATE INDEX apps_org ON apps(org_id);
   CREATE TABLE tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     org_id TEXT REFERENCES orgs(id),   -- NULL: admin token, all orgs
     hash TEXT NOT NULL UNIQUE,         -- sha256 of the secret; the secret is never stored
     created_at TEXT NOT NULL,
     expires_at TEXT,
     revoked_at TEXT,
     last_used_at TEXT
   );`,
];
