import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import { parsePortNumber, parsePorts } from '../../src/targets/ports';

const targetErr = (re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof HalfopenError);
  assert.equal(e.code, 'E_TARGET');
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'));
  return true;
};

describe('parsePorts', () => {
  test('lists and ranges come back sorted and unique', () => {
    assert.deepEqual(parsePorts('80'), [80]);
    assert.deepEqual(parsePorts('443,80,80'), [80, 443]);
    assert.deepEqual(parsePorts('8000-8002,80'), [80, 8000, 8001, 8002]);
    assert.deepEqual(parsePorts('1-3,2-5'), [1, 2, 3, 4, 5]);
    assert.deepEqual(parsePorts(' 80 , 443 '), [80, 443]);
    assert.deepEqual(parsePorts('7-7'), [7]);
    assert.deepEqual(parsePorts('65535,1'), [1, 65535]);
  });

  test('open-ended nmap forms', () => {
    assert.deepEqual(parsePorts('-3'), [1, 2, 3]);
    assert.deepEqual(parsePorts('65534-'), [65534, 65535]);
    const all = parsePorts('-');
    assert.equal(all.length, 65535);
    assert.equal(all[0], 1);
    assert.equal(all[65534], 65535);
  });

  test('errors name the bad token and what was expected', () => {
    assert.throws(() => parsePorts('0'), targetErr(/^invalid port "0": expected a number 1-65535 or a range LO-HI$/));
    assert.throws(() => parsePorts('80,65536'), targetErr(/^invalid port "65536" in "80,65536": expected a number 1-65535/));
    assert.throws(() => parsePorts('100-80'), targetErr(/^invalid port range "100-80" in "100-80": start is greater than end$/));
    assert.throws(() => parsePorts('80,,443'), targetErr(/^invalid port list "80,,443": empty entry/));
    assert.throws(() => parsePorts(''), targetErr(/empty entry/));
    assert.throws(() => parsePorts('80,'), targetErr(/empty entry/));
    assert.throws(() => parsePorts('http'), targetErr(/^invalid port "http"/));
    assert.throws(() => parsePorts('abc-90'), targetErr(/^invalid port "abc-90"/));
    assert.throws(() => parsePorts('1-2-3'), targetErr(/^invalid port "1-2-3"/));
    assert.throws(() => parsePorts('99999999'), targetErr(/^invalid port "99999999"/));
    assert.throws(() => parsePorts('0-10'), targetErr(/^invalid port "0-10"/));
    assert.throws(() => parsePorts('1.5'), targetErr(/^invalid port "1.5"/));
  });
});

describe('parsePortNumber', () => {
  test('accepts 1-65535 only', () => {
    assert.equal(parsePortNumber('1'), 1);
    assert.equal(parsePortNumber('65535'), 65535);
    for (const s of ['0', '65536', '', '-1', '+1', '1e3', ' 1', '08x']) assert.equal(parsePortNumber(s), null, s);
  });
});
