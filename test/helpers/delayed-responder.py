#!/usr/bin/env python3
# A backend network that answers late, for the --timeout auto tests: run in a
# fleet namespace on its veth, it answers each IPv4 TCP SYN to PREFIX with a
# SYN+ACK after a delay of its own (the kernel has no netem here). The
# prober's kernel resets the half-open connection as it does for any reply.
#
#   delayed-responder.py IFACE PREFIX MIN_MS MAX_MS SILENT_EVERY SECONDS
#
# The delay of an address is MIN_MS + (address * 2654435761 mod 2^32) mod
# (MAX_MS - MIN_MS + 1): fixed per address, spread over the whole span.
# Addresses whose last 32 bits are a multiple of SILENT_EVERY never answer
# (0: all answer). Exits after SECONDS whatever happens (a bounded helper).
# Prints "ready" once the socket is bound, and "answered N" at the end.
import heapq, select, signal, socket, struct, sys, time

iface, prefix, lo_ms, hi_ms, silent_every, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
net, plen = prefix.split('/')
net = struct.unpack('!I', socket.inet_aton(net))[0]
mask = (0xffffffff << (32 - int(plen))) & 0xffffffff

def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def delay_ms(addr):
    return lo_ms + ((addr * 2654435761) & 0xffffffff) % (hi_ms - lo_ms + 1)

def synack(frame):
    """The SYN+ACK for a SYN frame, or None when the frame is not one we answer."""
    if len(frame) < 54 or frame[12:14] != b'\x08\x00':
        return None
    ihl = (frame[14] & 0x0f) * 4
    if frame[23] != 6 or len(frame) < 14 + ihl + 20:
        return None
    src, dst = frame[26:30], frame[30:34]
    d = struct.unpack('!I', dst)[0]
    if d & mask != net or (silent_every and d % silent_every == 0):
        return None
    t = 14 + ihl
    sport, dport, seq = struct.unpack('!HHI', frame[t:t + 8])
    flags = frame[t + 13]
    if flags & 0x3f != 0x02:  # SYN alone
        return None
    tcp = struct.pack('!HHIIBBHHH', dport, sport, 0x5eed0000 ^ seq, (seq + 1) & 0xffffffff, 5 << 4, 0x12, 64240, 0, 0)
    pseudo = dst + src + struct.pack('!BBH', 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, dst, src)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    return d, frame[6:12] + frame[0:6] + b'\x08\x00' + ip + tcp

stopping = False
def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
print('ready', flush=True)
end = time.monotonic() + seconds
due = []
answered = 0
seq = 0
while time.monotonic() < end and not stopping:
    now = time.monotonic()
    while due and due[0][0] <= now:
        _, _, out = heapq.heappop(due)
        s.send(out)
        answered += 1
    wait = min(end - now, (due[0][0] - now) if due else 0.05)
    try:
        r, _, _ = select.select([s], [], [], max(0.0, wait))
    except InterruptedError:
        continue
    if not r:
        continue
    for _ in range(256):
        try:
            frame, meta = s.recvfrom(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if meta[2] == socket.PACKET_OUTGOING:
            continue
        got = synack(frame)
        if got:
            seq += 1
            heapq.heappush(due, (time.monotonic() + delay_ms(got[0]) / 1000, seq, got[1]))
print('answered', answered, flush=True)
