"""Linux socket constants that Python's :mod:`socket` module does not export.

They live in one place so that a missing or platform-specific value is fixed once.  Values
are the Linux ABI numbers (``include/uapi/asm-generic/socket.h``, ``linux/in.h``,
``linux/icmp.h``, ``linux/icmpv6.h``, ``linux/net_tstamp.h``); on other platforms the
socket layer skips the options that need them.  Options that are portable (TTL, TOS, hop
limit, traffic class) take the platform's own number from :mod:`socket` when it has one.
"""

from __future__ import annotations

import socket
import sys

IS_LINUX = sys.platform.startswith("linux")

SOL_SOCKET = socket.SOL_SOCKET
SO_TIMESTAMPNS = 35  # == SCM_TIMESTAMPNS; cmsg: struct timespec
SO_TIMESTAMPING = 37  # == SCM_TIMESTAMPING; cmsg: 3 x struct timespec, software first
SO_RCVBUFFORCE = 33
SO_RXQ_OVFL = 40  # cmsg: uint32 count of datagrams the socket dropped
SCM_TS_OPT_ID = 81  # per-send timestamp id (Linux >= 6.13)

SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11

SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
SO_EE_ORIGIN_TIMESTAMPING = 4

IPPROTO_IP = socket.IPPROTO_IP
IPPROTO_IPV6 = socket.IPPROTO_IPV6
IPPROTO_ICMP = socket.IPPROTO_ICMP
IPPROTO_ICMPV6 = socket.IPPROTO_ICMPV6
IP_TTL: int = getattr(socket, "IP_TTL", 2)  # also the cmsg type carrying a received TTL
IP_RECVERR = 11
IP_RECVTTL = 12
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_WANT = 1
IP_PMTUDISC_DO = 2
IP_TOS: int = getattr(socket, "IP_TOS", 1)
IP_MTU = 14  # getsockopt on a connected socket: the path MTU
IPV6_RECVERR = 25
IPV6_RECVHOPLIMIT: int = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT: int = getattr(socket, "IPV6_HOPLIMIT", 52)
IPV6_MTU_DISCOVER = 23
IPV6_TCLASS: int = getattr(socket, "IPV6_TCLASS", 67)
IPV6_MTU = 24
SO_BINDTODEVICE = 25

SOL_RAW = 255
ICMP_FILTER = 1  # SOL_RAW; u32 mask of ICMPv4 types to block
ICMP6_FILTER = 1  # IPPROTO_ICMPV6; 8 x u32, a set bit blocks that type
