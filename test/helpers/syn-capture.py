#!/usr/bin/env python3
# Records the IPv4 and IPv6 TCP SYNs arriving on IFACE, for the multi-source
# and pacing tests: one "SRC DST DPORT TIME" line per SYN (TIME: the kernel's
# receive timestamp, CLOCK_REALTIME seconds), written to OUT when it ends
# (SIGTERM, or after SECONDS whatever happens: a bounded helper). Prints
# "ready" once bound.
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
SO_TIMESTAMPNS = getattr(socket, 'SO_TIMESTAMPNS', 35)
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
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
            f, anc, _, meta = s.recvmsg(2048, 64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        ts = 0.0
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                ts = int.from_bytes(data[0:8], 'little') + int.from_bytes(data[8:16], 'little') / 1e9
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
        lines.append('%s %s %d %.6f' % (src, dst, int.from_bytes(f[t + 2:t + 4], 'big'), ts))
with open(out, 'w') as fh:
    fh.write('\n'.join(lines) + ('\n' if lines else ''))
print('captured', len(lines), flush=True)
