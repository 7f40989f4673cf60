// Fleet listener: listens on the given ports on every address of its network
// namespace (AnyIP routes make a whole prefix local) and reports each accepted
// connection on stdout. Exits when its stdin closes, so it never outlives the
// process that started it.
import net from 'node:net';

const ports = process.argv.slice(2).map(Number);
let listening = 0;
for (const port of ports) {
  const srv = net.createServer((sock) => {
    process.stdout.write(`accept ${sock.remoteAddress} ${sock.localAddress} ${port}\n`);
    sock.destroy();
  });
  srv.on('error', (err) => {
    process.stderr.write(`listener: port ${port}: ${err.message}\n`);
    process.exit(1);
  });
  srv.listen({ port, host: '::', ipv6Only: false, backlog: 65535 }, () => {
    if (++listening === ports.length) process.stdout.write('ready\n');
  });
}
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
