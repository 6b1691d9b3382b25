/* lo and eth0 via ioctl: no netlink library, no ip(8) in the image needed. */
#include "init.h"
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_addr(int s, unsigned long req, const char *ifname, const char *addr) {
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1) { errno = EINVAL; return -1; }
  return ioctl(s, req, &ifr);
}

static int if_up(int s, const char *ifname) {
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) return -1;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &ifr);
}

int net_up(const char *ip, const char *mask, const char *gw) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int rc = 0;
  /* The kernel gives lo 127.0.0.1/8 (and ::1) itself once it is up. */
  if (if_up(s, "lo") != 0) { ilog("cannot bring up lo: %s", strerror(errno)); rc = -1; }
  if (ip && *ip) {
    if (set_addr(s, SIOCSIFADDR, "eth0", ip) != 0 ||
        set_addr(s, SIOCSIFNETMASK, "eth0", mask && *mask ? mask : "255.255.255.0") != 0 ||
        if_up(s, "eth0") != 0) {
      ilog("cannot configure eth0 (%s): %s", ip, strerror(errno)); rc = -1;
    } else if (gw && *gw) {
      struct rtentry rt; memset(&rt, 0, sizeof rt);
      struct sockaddr_in *g = (struct sockaddr_in *)&rt.rt_gateway;
      struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst;
      struct sockaddr_in *m = (struct sockaddr_in *)&rt.rt_genmask;
      g->sin_family = d->sin_family = m->sin_family = AF_INET;
      inet_pton(AF_INET, gw, &g->sin_addr);
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = (char *)"eth0";
      if (ioctl(s, SIOCADDRT, &rt) != 0 && errno != EEXIST) { ilog("cannot add default route via %s: %s", gw, strerror(errno)); rc = -1; }
    }
  }
  close(s);
  return rc;
}
