import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HalfopenError } from '../../src/errors';
import {
  createWriter, formatSummaryLine, OUTPUT_FORMATS, parseFormat, SummaryCounter, SweepSummary, xmlAttr,
} from '../../src/output';
import type { ProbeResult } from '../../src/types';

const TS = '2026-01-02T03:04:05.678Z';
const open: ProbeResult = { ip: '198.18.0.7', port: 80, state: 'open', reason: 'syn-ack', rtt_ms: 0.0414999, ttl: 64, ts: TS };
const filtered6: ProbeResult = { ip: '2001:db8::7', port: 443, state: 'filtered', reason: 'no-response', rtt_ms: null, ttl: null, ts: TS };
const unreachable: ProbeResult = { ip: '198.18.0.9', port: 22, state: 'unreachable', reason: 'icmp-3-13', rtt_ms: 12.3456, ttl: 250, ts: TS };
const nasty: ProbeResult = { ip: '198.18.0.8', port: 1, state: 'closed', reason: 'a<b>&"c\',d/e\tf\ng\u0001', rtt_ms: 1, ttl: 0, ts: TS };

const summary = (): SweepSummary => {
  const c = new SummaryCounter(new Date('2026-01-02T03:04:05.000Z'));
  for (let i = 0; i < 3840; i++) c.add({ state: 'open' });
  for (let i = 0; i < 256; i++) c.add({ state: 'filtered' });
  return c.finish({ sent: 4352, retries: 12, duplicates: 0, invalid: 0 }, new Date('2026-01-02T03:04:05.420Z'));
};

const opts = { version: '0.1.0', args: ['-p', '80', '198.18.0.0/24'], startTime: new Date('2026-01-02T03:04:05.000Z') };

describe('summary', () => {
  test('SummaryCounter totals and rate', () => {
    const s = summary();
    assert.deepEqual(s.counts, { open: 3840, closed: 0, filtered: 256, unreachable: 0 });
    assert.equal(s.probes, 4096);
    assert.equal(s.sent, 4352);
    assert.equal(s.elapsedSeconds, 0.42);
    assert.ok(Math.abs(s.probesPerSecond - 4096 / 0.42) < 1e-6);
    assert.equal(s.startTime, '2026-01-02T03:04:05.000Z');
    assert.equal(s.endTime, '2026-01-02T03:04:05.420Z');
  });

  test('formatSummaryLine', () => {
    assert.equal(formatSummaryLine(summary()),
      'halfopen: 4096 probes in 0.42 s (9752/s): 3840 open, 0 closed, 256 filtered, 0 unreachable; 12 retried, 0 duplicates, 0 invalid');
  });

  test('a zero-length sweep has rate 0, not Infinity', () => {
    const t = new Date('2026-01-01T00:00:00Z');
    const s = new SummaryCounter(t).finish({ sent: 0, retries: 0, duplicates: 0, invalid: 0 }, t);
    assert.equal(s.probesPerSecond, 0);
    assert.equal(formatSummaryLine(s), 'halfopen: 0 probes in 0.00 s (0/s): 0 open, 0 closed, 0 filtered, 0 unreachable; 0 retried, 0 duplicates, 0 invalid');
  });

  test('finish snapshots the counts', () => {
    const c = new SummaryCounter();
    c.add({ state: 'closed' });
    const s = c.finish({ sent: 1, retries: 0, duplicates: 0, invalid: 0 });
    c.add({ state: 'closed' });
    assert.equal(s.counts.closed, 1);
  });
});

describe('ndjson', () => {
  const w = createWriter('ndjson');
  test('exact rows, key order, rtt to 3 decimals, nulls', () => {
    assert.equal(w.header(), '');
    assert.equal(w.row(open), `{"ip":"198.18.0.7","port":80,"state":"open","reason":"syn-ack","rtt_ms":0.041,"ttl":64,"ts":"${TS}"}\n`);
    assert.equal(w.row(filtered6), `{"ip":"2001:db8::7","port":443,"state":"filtered","reason":"no-response","rtt_ms":null,"ttl":null,"ts":"${TS}"}\n`);
    assert.equal(w.row(unreachable), `{"ip":"198.18.0.9","port":22,"state":"unreachable","reason":"icmp-3-13","rtt_ms":12.346,"ttl":250,"ts":"${TS}"}\n`);
    assert.equal(w.footer(summary()), '');
  });

  test('every row is one parseable line with the ProbeResult keys in order', () => {
    const line = w.row(nasty);
    assert.equal(line.indexOf('\n'), line.length - 1);
    const obj = JSON.parse(line);
    assert.deepEqual(Object.keys(obj), ['ip', 'port', 'state', 'reason', 'rtt_ms', 'ttl', 'ts']);
    assert.equal(obj.reason, nasty.reason);
  });
});

describe('csv', () => {
  const w = createWriter('csv');
  test('header and exact rows, nulls empty', () => {
    assert.equal(w.header(), 'ip,port,state,reason,rtt_ms,ttl,ts\n');
    assert.equal(w.row(open), `198.18.0.7,80,open,syn-ack,0.041,64,${TS}\n`);
    assert.equal(w.row(filtered6), `2001:db8::7,443,filtered,no-response,,,${TS}\n`);
    assert.equal(w.footer(summary()), '');
  });

  test('RFC 4180 quoting when a field needs it', () => {
    assert.equal(w.row({ ...open, reason: 'x,"y"' }), `198.18.0.7,80,open,"x,""y""",0.041,64,${TS}\n`);
  });
});

describe('text', () => {
  const w = createWriter('text');
  test('fixed columns wide enough for any IPv6 address', () => {
    const header = w.header();
    assert.match(header, /^ADDRESS\s+PORT\s+STATE\s+REASON\s+RTT\n$/);
    const longest = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const rows = [w.row(open), w.row(filtered6), w.row({ ...open, ip: longest, port: 65535 })];
    assert.equal(rows[0], `198.18.0.7${' '.repeat(29)}     80  open         syn-ack           0.041 ms\n`);
    assert.match(rows[1], /^2001:db8::7 +443  filtered     no-response       -\n$/);
    const col = (line: string, word: string): number => line.indexOf(word);
    assert.equal(col(rows[0], 'open'), col(header, 'STATE'));
    assert.equal(col(rows[1], 'filtered'), col(header, 'STATE'));
    assert.equal(col(rows[2], 'open'), col(header, 'STATE'));
    assert.equal(col(rows[0], 'syn-ack'), col(header, 'REASON'));
    assert.equal(col(rows[0], '80') + 2, col(header, 'PORT') + 4);
    assert.equal(w.footer(summary()), '');
  });
});

describe('grepable', () => {
  const w = createWriter('grepable', opts);
  test('header, exact rows, footer', () => {
    assert.equal(w.header(), '# halfopen 0.1.0 scan initiated 2026-01-02T03:04:05.000Z as: halfopen -p 80 198.18.0.0/24\n');
    assert.equal(w.row(open), 'Host: 198.18.0.7 ()\tPorts: 80/open/tcp//syn-ack///\n');
    assert.equal(w.row(filtered6), 'Host: 2001:db8::7 ()\tPorts: 443/filtered/tcp//no-response///\n');
    assert.equal(w.footer(summary()),
      '# halfopen done at 2026-01-02T03:04:05.420Z -- 4096 probes (3840 open, 0 closed, 256 filtered, 0 unreachable) scanned in 0.42 seconds\n');
  });

  test('field separators inside values cannot break the record', () => {
    const line = w.row(nasty);
    assert.equal(line.split('\n').length, 2);
    assert.equal(line.split('\t').length, 2);
    assert.equal(line.slice(line.indexOf('Ports: ')).split('/').length, 8);
  });

  test('no version and no args still give a valid header', () => {
    assert.match(createWriter('grepable').header(), /^# halfopen scan initiated \d{4}-\d\d-\d\dT[\d:.]+Z as: halfopen\n$/);
  });
});

// Minimal well-formedness check: one root, balanced and properly nested tags,
// quoted attributes without raw '<' or stray '&', no duplicate attributes,
// no characters XML 1.0 forbids.
function assertWellFormedXml(doc: string): void {
  assert.doesNotMatch(doc, /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/);
  const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  let rest = doc;
  const decl = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/.exec(rest);
  assert.ok(decl, 'xml declaration');
  rest = rest.slice(decl[0].length);
  const tag = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"<]*")*)\s*(\/?)>/y;
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  while (i < rest.length) {
    if (rest[i] === '<') {
      tag.lastIndex = i;
      const m = tag.exec(rest);
      assert.ok(m, `malformed tag at: ${rest.slice(i, i + 60)}`);
      const [, close, name, attrText, selfClose] = m;
      const names = [...attrText.matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)].map((a) => {
        assert.doesNotMatch(a[2], badAmp, `attribute ${a[1]}`);
        return a[1];
      });
      assert.equal(new Set(names).size, names.length, `duplicate attribute in <${name}>`);
      if (close) {
        assert.equal(stack.pop(), name, `mismatched </${name}>`);
      } else {
        if (stack.length === 0) roots++;
        if (!selfClose) stack.push(name);
      }
      i = tag.lastIndex;
    } else {
      const j = rest.indexOf('<', i);
      const text = rest.slice(i, j < 0 ? rest.length : j);
      assert.doesNotMatch(text, badAmp);
      if (stack.length === 0) assert.match(text, /^\s*$/, 'text outside the root');
      i = j < 0 ? rest.length : j;
    }
  }
  assert.deepEqual(stack, [], 'unclosed tags');
  assert.equal(roots, 1, 'exactly one root element');
}

describe('xml', () => {
  const w = createWriter('xml', { ...opts, args: ['--note', 'a<b & "c"'] });
  test('exact host element', () => {
    assert.equal(w.row(open),
      `<host ts="${TS}"><address addr="198.18.0.7" addrtype="ipv4"/><ports><port protocol="tcp" portid="80">` +
      '<state state="open" reason="syn-ack" reason_ttl="64"/></port></ports><times rtt_ms="0.041"/></host>\n');
    assert.equal(w.row(filtered6),
      `<host ts="${TS}"><address addr="2001:db8::7" addrtype="ipv6"/><ports><port protocol="tcp" portid="443">` +
      '<state state="filtered" reason="no-response"/></port></ports></host>\n');
  });

  test('document is well-formed, with header and runstats footer', () => {
    const doc = w.header() + w.row(open) + w.row(filtered6) + w.row(unreachable) + w.row(nasty) + w.footer(summary());
    assertWellFormedXml(doc);
    assert.match(doc, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<halfopenrun scanner="halfopen" args="halfopen --note a&lt;b &amp; &quot;c&quot;" start="1767323045" startstr="2026-01-02T03:04:05.000Z" version="0.1.0" xmloutputversion="1.0">\n/);
    assert.match(doc, /<runstats><finished time="1767323045" timestr="2026-01-02T03:04:05.420Z" elapsed="0.42" summary="halfopen: 4096 probes[^"]*"\/>/);
    assert.match(doc, /<probes total="4096" open="3840" closed="0" filtered="256" unreachable="0" sent="4352" retries="12" duplicates="0" invalid="0" rate="9752"\/><\/runstats>\n<\/halfopenrun>\n$/);
    assert.ok(doc.includes('reason="a&lt;b&gt;&amp;&quot;c&apos;,d/e&#9;f&#10;g\ufffd"'));
    // Rows stay one line each even with newlines in values.
    assert.equal(w.row(nasty).split('\n').length, 2);
  });

  test('an empty sweep is still a well-formed document', () => {
    assertWellFormedXml(w.header() + w.footer(new SummaryCounter().finish({ sent: 0, retries: 0, duplicates: 0, invalid: 0 })));
  });

  test('the checker itself rejects broken documents', () => {
    const head = '<?xml version="1.0" encoding="UTF-8"?>\n';
    assert.throws(() => assertWellFormedXml(`${head}<a><b></a></b>`));
    assert.throws(() => assertWellFormedXml(`${head}<a x="1 & 2"/>`));
    assert.throws(() => assertWellFormedXml(`${head}<a x="<"/>`));
    assert.throws(() => assertWellFormedXml(`${head}<a/><b/>`));
    assert.throws(() => assertWellFormedXml(`${head}<a>`));
  });

  test('xmlAttr escapes markup, whitespace controls and forbidden characters', () => {
    assert.equal(xmlAttr(`<>&"'`), '&lt;&gt;&amp;&quot;&apos;');
    assert.equal(xmlAttr('a\tb\nc\rd'), 'a&#9;b&#10;c&#13;d');
    assert.equal(xmlAttr('\u0000\u001f\ud800x\uffff'), '\ufffd\ufffd\ufffdx\ufffd');
    assert.equal(xmlAttr('\ud83d\ude00 ok'), '\ud83d\ude00 ok'); // a valid surrogate pair survives
    assert.equal(xmlAttr('plain'), 'plain');
  });
});

describe('createWriter / parseFormat', () => {
  test('every format builds a writer', () => {
    for (const f of OUTPUT_FORMATS) {
      const w = createWriter(f, opts);
      assert.equal(typeof w.row(open), 'string');
      assert.ok(w.row(open).endsWith('\n'), f);
      for (const chunk of [w.header(), w.footer(summary())]) assert.ok(chunk === '' || chunk.endsWith('\n'), f);
    }
    assert.deepEqual([...OUTPUT_FORMATS], ['text', 'ndjson', 'csv', 'grepable', 'xml']);
  });

  test('parseFormat', () => {
    assert.equal(parseFormat('xml'), 'xml');
    assert.throws(() => parseFormat('json'), (e: unknown) =>
      e instanceof HalfopenError && e.code === 'E_USAGE' && e.message === 'invalid format "json": expected one of text, ndjson, csv, grepable, xml');
  });
});
