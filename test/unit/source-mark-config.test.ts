// Unit tier: per-backend `source` and `mark` in serve's config (and in
// `defaults`), validated like every other field: one line naming the file,
// the field and what was expected.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/daemon/config';
import { HalfopenError } from '../../src/errors';
import { sameRoute } from '../../src/daemon/send-routes';

const parse = (yaml: string) => parseConfig(yaml, 'x.yaml');
const rejects = (yaml: string, re: RegExp) => assert.throws(() => parse(yaml),
  (e: unknown) => e instanceof HalfopenError && e.code === 'E_CONFIG' && re.test(e.message) && !e.message.includes('\n'));

describe('backends: mark', () => {
  test('absent: no mark field at all (today\'s config compares equal)', () => {
    const b = parse('backends: [{ host: 198.18.0.1, port: 80 }]').backends[0];
    assert.equal('mark' in b, false);
    assert.equal('source' in b, false);
  });

  test('decimal, 0x hex (YAML integer or string), up to 0xffffffff', () => {
    const bs = parse(`backends:
  - { host: 198.18.0.1, port: 80, mark: 16 }
  - { host: 198.18.0.2, port: 80, mark: 0x20 }
  - { host: 198.18.0.3, port: 80, mark: "0x30" }
  - { host: 198.18.0.4, port: 80, mark: "48" }
  - { host: 198.18.0.5, port: 80, mark: 0xffffffff }
  - { host: 198.18.0.6, port: 80, mark: 0 }`).backends;
    assert.deepEqual(bs.map((b) => b.mark), [16, 32, 48, 48, 0xffffffff, 0]);
  });

  for (const bad of ['-1', '0x100000000', '4294967296', '1.5', '"ten"', '"0xg"', 'true', '[1]']) {
    test(`rejects ${bad}`, () => rejects(`backends: [{ host: 198.18.0.1, port: 80, mark: ${bad} }]`,
      /^x\.yaml: backends\[0\]\.mark: expected a mark from 0 to 0xffffffff \(decimal or 0x hex\), got /));
  }

  test('from defaults, overridden per backend (0 = unmarked)', () => {
    const bs = parse(`defaults: { mark: 0x10 }
backends:
  - { host: 198.18.0.1, port: 80 }
  - { host: 198.18.0.2, port: 80, mark: 0x20 }
  - { host: 198.18.0.3, port: 80, mark: 0 }`).backends;
    assert.deepEqual(bs.map((b) => b.mark), [0x10, 0x20, 0]);
  });

  test('a bad default names defaults.mark', () => rejects('defaults: { mark: x }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /^x\.yaml: defaults\.mark: expected a mark/));
});

describe('backends: source', () => {
  test('an address of the backend\'s family, IPv6 with or without brackets', () => {
    const bs = parse(`backends:
  - { host: 198.18.0.1, port: 80, source: 198.19.254.1 }
  - { host: "2001:2::1", port: 80, source: "[2001:2:0:fffe::1]" }`).backends;
    assert.deepEqual(bs.map((b) => b.source), ['198.19.254.1', '2001:2:0:fffe::1']);
  });

  test('defaults: one address per family; each backend takes its family\'s, or none', () => {
    const bs = parse(`defaults: { source: [198.19.254.1, "2001:2:0:fffe::1"] }
backends:
  - { host: 198.18.0.1, port: 80 }
  - { host: "2001:2::1", port: 80 }
  - { host: 198.18.0.2, port: 80, source: 198.19.254.9 }`).backends;
    assert.deepEqual(bs.map((b) => b.source), ['198.19.254.1', '2001:2:0:fffe::1', '198.19.254.9']);
    const only4 = parse('defaults: { source: 198.19.254.1 }\nbackends: [{ host: "2001:2::1", port: 80 }]').backends[0];
    assert.equal(only4.source, undefined, 'an IPv4 default does not apply to an IPv6 backend');
  });

  test('a hostname backend takes a single source as is', () => {
    assert.equal(parse('backends: [{ host: web.example, port: 80, source: 198.19.254.1 }]').backends[0].source, '198.19.254.1');
  });

  test('rejects what is not an address, two of one family, more than two, and the other family', () => {
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: eth1 }]',
      /^x\.yaml: backends\[0\]\.source: expected an IP address of this host, or a list of one IPv4 and one IPv6 address, got "eth1"$/);
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: 198.19.254.1/32 }]', /backends\[0\]\.source: expected an IP address/);
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: 7 }]', /backends\[0\]\.source: expected an IP address/);
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: [198.19.254.1, 198.19.254.2] }]', /backends\[0\]\.source: expected at most one address per family/);
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: [198.19.254.1, "::1", "::2"] }]', /backends\[0\]\.source: expected an IP address/);
    rejects('backends: [{ host: 198.18.0.1, port: 80, source: "2001:2::5" }]', /^x\.yaml: backends\[0\]\.source: expected an address of the same family as 198\.18\.0\.1, got "2001:2::5"$/);
    rejects('defaults: { source: nope }\nbackends: [{ host: 198.18.0.1, port: 80 }]', /^x\.yaml: defaults\.source: expected an IP address/);
    rejects('defaults: { source: [198.19.254.1, "2001:2::5"] }\nbackends: [{ host: web.example, port: 80 }]',
      /^x\.yaml: backends\[0\]\.source: expected one address for a backend given by hostname/);
  });
});

describe('sameRoute (reload keeps slots only when source and mark are unchanged)', () => {
  test('compares both fields', () => {
    const [a, b, c, d] = parse(`backends:
  - { name: a, host: 198.18.0.1, port: 80, mark: 1 }
  - { name: b, host: 198.18.0.1, port: 81, mark: 1 }
  - { name: c, host: 198.18.0.1, port: 82, mark: 2 }
  - { name: d, host: 198.18.0.1, port: 83, mark: 1, source: 198.19.254.1 }`).backends;
    assert.equal(sameRoute(a, b), true);
    assert.equal(sameRoute(a, c), false);
    assert.equal(sameRoute(a, d), false);
  });
});
