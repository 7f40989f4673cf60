#!/usr/bin/env python3
# Records the IPv4 and IPv6 TCP SYNs arriving on IFACE, for the multi-source tests:
# one "SRC DST DPORT" line per SYN, written to OUT when it ends (SIGTERM, or
# after SECONDS whatever happens: a bounded helper). Prints "ready" once bound.
#
#   syn-capture.py IFACE SECONDS OUT
import select, signal, socket, sys, time

iface, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
stopping = False
def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 25)
print('ready', flush=True)
lines = []
end = time.monotonic() + seconds
while time.monotonic() < end and not stopping:
    try:
        r, _, _ = select.select([s], [], [], 0.05)
    except InterruptedError:
        continue
    if not r:
        continue
    for _ in range(512):
        try:
            f, meta = s.recvfrom(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if meta[2] == socket.PACKET_OUTGOING or len(f) < 54:
            continue
        if f[12:14] == b'\x08\x00' and f[23] == 6:
            t = 14 + (f[14] & 0x0f) * 4
            src, dst = socket.inet_ntoa(f[26:30]), socket.inet_ntoa(f[30:34])
        elif f[12:14] == b'\x86\xdd' and f[20] == 6 and len(f) >= 74:
            t = 54
            src, dst = socket.inet_ntop(socket.AF_INET6, f[22:38]), socket.inet_ntop(socket.AF_INET6, f[38:54])
        else:
            continue
        if f[t + 13] & 0x3f != 0x02:
            continue
        lines.append('%s %s %d' % (src, dst, int.from_bytes(f[t + 2:t + 4], 'big')))
with open(out, 'w') as fh:
    fh.write('\n'.join(lines) + ('\n' if lines else ''))
print('captured', len(lines), flush=True)
