import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import {
  addressBytes, addressFromBytes, familyOf, formatAddress, isV4, mustParseAddress,
  parseAddress, parseIPv4, parseIPv6, V4_MAX, V4_MIN, v4FromNumber, v4ToNumber,
} from '../../src/targets/address';

describe('parseIPv4', () => {
  test('valid dotted quads map into ::ffff:0:0/96', () => {
    assert.equal(parseIPv4('0.0.0.0'), V4_MIN);
    assert.equal(parseIPv4('255.255.255.255'), V4_MAX);
    assert.equal(parseIPv4('198.18.0.7'), 0xffff_c612_0007n);
    assert.equal(parseIPv4('1.2.3.4'), v4FromNumber(0x01020304));
  });

  test('bad forms are null', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.256', '01.2.3.4', '1.2.3.04', '1.2.3.-1',
      ' 1.2.3.4', '1.2.3.4 ', '1..2.3', 'a.b.c.d', '1.2.3.4/24', '0x1.2.3.4', '1.2.3.4.', '1e2.0.0.1', '١.2.3.4']) {
      assert.equal(parseIPv4(s), null, s);
    }
  });
});

describe('parseIPv6', () => {
  const cases: Array<[string, bigint]> = [
    ['::', 0n],
    ['::1', 1n],
    ['1::', 1n << 112n],
    ['2001:db8::1', 0x2001_0db8_0000_0000_0000_0000_0000_0001n],
    ['2001:DB8::AAAA', 0x2001_0db8_0000_0000_0000_0000_0000_aaaan],
    ['1:2:3:4:5:6:7:8', 0x0001_0002_0003_0004_0005_0006_0007_0008n],
    ['1:2:3:4:5:6:7::', 0x0001_0002_0003_0004_0005_0006_0007_0000n],
    ['::2:3:4:5:6:7:8', 0x0000_0002_0003_0004_0005_0006_0007_0008n],
    ['1:2:3:4:5:6:1.2.3.4', 0x0001_0002_0003_0004_0005_0006_0102_0304n],
    ['64:ff9b::192.0.2.33', 0x0064_ff9b_0000_0000_0000_0000_c000_0221n],
    ['::ffff:1.2.3.4', 0xffff_0102_0304n],
    ['::1.2.3.4', 0x0102_0304n],
    ['0000:0000:0000:0000:0000:0000:0000:0001', 1n],
  ];
  for (const [text, value] of cases) test(`parses ${text}`, () => assert.equal(parseIPv6(text), value));

  test('IPv4-mapped text is the same address as the dotted quad', () => {
    assert.equal(parseIPv6('::ffff:198.18.0.7'), parseIPv4('198.18.0.7'));
    assert.equal(parseIPv6('::ffff:c612:7'), parseIPv4('198.18.0.7'));
  });

  test('bad forms are null', () => {
    for (const s of [':', ':::', '', '1', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::', '1::2::3', ':1::', '1::2:',
      '::1:', ':1:2:3:4:5:6:7:8', '12345::', 'fe80::1%eth0', 'fe80::1%1', 'g::', '1.2.3.4::', '::1.2.3.4:5', '::ffff:1.2.3',
      '::ffff:01.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '[::1]', ' ::1', '::1 ', '1:2:3:4:5:6:7:8:', '::-1', '+1::']) {
      assert.equal(parseIPv6(s), null, s);
    }
  });
});

describe('parseAddress / mustParseAddress', () => {
  test('picks the family from the text', () => {
    assert.equal(parseAddress('10.0.0.1'), parseIPv4('10.0.0.1'));
    assert.equal(parseAddress('::1'), 1n);
    assert.equal(parseAddress('example.com'), null);
  });

  test('mustParseAddress throws E_TARGET naming the input', () => {
    assert.throws(() => mustParseAddress('10.0.0.256', 'source address'), (e: unknown) =>
      e instanceof HalfopenError && e.code === 'E_TARGET' && e.message === 'invalid source address "10.0.0.256": expected an IPv4 or IPv6 address');
  });
});

describe('formatAddress', () => {
  // RFC 5952 section 4 examples plus edge cases.
  const vectors: Array<[string, string]> = [
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // longest run wins
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // ties: first run
    ['2001:DB8::AAAA', '2001:db8::aaaa'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['1:0:0:0:0:0:0:1', '1::1'],
    ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::1.2.3.4', '::102:304'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::fffe:1.2.3.4', '::fffe:102:304'],
    ['::1:ffff:1.2.3.4', '::1:ffff:102:304'],
  ];
  for (const [input, canon] of vectors) {
    test(`${input} → ${canon}`, () => assert.equal(formatAddress(parseIPv6(input) as bigint), canon));
  }

  test('IPv4 prints dotted', () => {
    assert.equal(formatAddress(V4_MIN), '0.0.0.0');
    assert.equal(formatAddress(V4_MAX), '255.255.255.255');
    assert.equal(formatAddress(parseIPv4('198.18.0.7') as bigint), '198.18.0.7');
  });

  test('out-of-range values throw', () => {
    assert.throws(() => formatAddress(-1n), RangeError);
    assert.throws(() => formatAddress(1n << 128n), RangeError);
  });

  test('format → parse round-trips random addresses', () => {
    let x = 0x243f6a8885a308d3n;
    const next = (): bigint => { x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n); return x; };
    for (let i = 0; i < 2000; i++) {
      let a = (next() << 64n) | next();
      // Sprinkle zero groups so compression paths are exercised.
      const zeroMask = next();
      for (let g = 0n; g < 8n; g++) if ((zeroMask >> g) & 1n) a &= ~(0xffffn << (g * 16n));
      const text = formatAddress(a);
      assert.equal(parseAddress(text), a, text);
      assert.equal(text, text.toLowerCase());
      const v4 = v4FromNumber(Number(next() & 0xffff_ffffn));
      assert.equal(parseAddress(formatAddress(v4)), v4);
    }
  });
});

describe('families and bytes', () => {
  test('isV4 is exactly the mapped block', () => {
    assert.equal(isV4(V4_MIN), true);
    assert.equal(isV4(V4_MAX), true);
    assert.equal(isV4(V4_MIN - 1n), false);
    assert.equal(isV4(V4_MAX + 1n), false);
    assert.equal(familyOf(1n), 6);
    assert.equal(familyOf(V4_MIN), 4);
    assert.equal(v4ToNumber(parseIPv4('255.1.2.3') as bigint), 0xff010203);
  });

  test('addressBytes is network order, mapped for IPv4', () => {
    assert.deepEqual([...addressBytes(parseIPv4('1.2.3.4') as bigint)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    const v6 = parseIPv6('2001:db8::1') as bigint;
    assert.deepEqual([...addressBytes(v6)], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.equal(addressFromBytes(addressBytes(v6)), v6);
    const max = (1n << 128n) - 1n;
    assert.equal(addressFromBytes(addressBytes(max)), max);
  });

  test('addressFromBytes honours a subarray view and rejects wrong lengths', () => {
    const buf = new Uint8Array(20);
    buf.set(addressBytes(parseIPv4('9.8.7.6') as bigint), 4);
    assert.equal(formatAddress(addressFromBytes(buf.subarray(4, 20))), '9.8.7.6');
    assert.throws(() => addressFromBytes(new Uint8Array(4)), RangeError);
  });
});
