/**
 * The round trips an ETRN release takes are written in one place, the table in
 * docs/real-servers.md "Round trips", and that table is true: it says what the bench's latest
 * recorded run in bench/README.md says, dequeue's figures are counted again here through the
 * bench's own latency proxy (no delay: round trips are counted, not timed), and no other page of
 * the docs writes such a figure.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatencyProxy } from '../../bench/latency-proxy';
import { parseTarget } from '../../lambda/core/config';
import type { Credentials } from '../../lambda/core/ports';
import { releaseSignal } from '../../lambda/core/signal/session';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { ROOT } from './repository-paths';

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/** The section of a Markdown page under `heading`, up to the next heading of its level or above. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`no "${heading}" heading`);
  const level = heading.indexOf(' ');
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^#{1,${level}} `, 'm'));
  return end === -1 ? rest : rest.slice(0, end);
}

/**
 * The rows of a Markdown table in `text` whose header starts with `columns`: the first such table,
 * or with `last`, the last one (a bench's latest recorded run is the last pasted).
 */
function table(text: string, columns: readonly string[], last = false): string[][] {
  const lines = text.split('\n');
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
  const heads = lines.flatMap((l, i) =>
    l.startsWith('|') && columns.every((c, k) => cells(l)[k] === c) ? [i] : [],
  );
  const head = (last ? heads.at(-1) : heads[0]) ?? -1;
  if (head === -1) throw new Error(`no table headed ${columns.join(' | ')}`);
  const rows: string[][] = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(cells(line));
  }
  return rows;
}

const count = (text: string) => {
  if (!/^\d+$/.test(text)) throw new Error(`"${text}" is not one count of round trips`);
  return Number(text);
};

interface Figures {
  readonly dequeue: number;
  readonly fetchmail: number;
}

/** docs/real-servers.md "Round trips": scenario -> figures. */
function documented(): Map<string, Figures> {
  const rows = table(section(read('docs/real-servers.md'), '### Round trips'), [
    'the provider answers',
    'dequeue',
    'fetchmail',
  ]);
  return new Map(rows.map(([s, d, f]) => [s!, { dequeue: count(d!), fetchmail: count(f!) }]));
}

/** bench/README.md's recorded run of bench/etrn-round-trips.ts: scenario -> figures. */
function recorded(): Map<string, Figures> {
  const bench = section(
    read('bench/README.md'),
    '## ETRN round trips on a slow line (`etrn-round-trips.ts`)',
  );
  const rows = table(bench, ['scenario', 'client', 'round trips'], true);
  const figures = new Map<string, { dequeue?: number; fetchmail?: number }>();
  for (const [scenario, client, trips] of rows) {
    const f = figures.get(scenario!) ?? {};
    if (client!.startsWith('dequeue, in-process')) f.dequeue = count(trips!);
    if (client!.startsWith('fetchmail')) f.fetchmail = count(trips!);
    figures.set(scenario!, f);
  }
  return new Map(
    [...figures].map(([s, f]) => [s, { dequeue: f.dequeue ?? NaN, fetchmail: f.fetchmail ?? NaN }]),
  );
}

describe('the round-trip table (docs/real-servers.md)', () => {
  const account = { username: 'customer', password: 'bench-s3cret' };
  const credentials: Credentials = { get: async () => account };
  const providers: ScriptedProvider[] = [];
  const proxies: LatencyProxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop();
    for (const p of providers) await p.stop();
  });

  /** What dequeue takes now, the bench's way: its provider, its target, its proxy (no delay). */
  async function countDequeue(scenario: string): Promise<number> {
    // "a.test 251, b.test 250": each domain and what the provider answers its ETRN.
    const answers = scenario.split(', ').map((part) => part.split(' ') as [string, string]);
    const provider = await new ScriptedProvider({
      extensions: ['PIPELINING', 'ETRN', 'AUTH PLAIN LOGIN CRAM-MD5'],
      account,
      etrn: Object.fromEntries(answers.map(([domain, code]) => [domain, `${code} ${domain}`])),
    }).start();
    providers.push(provider);
    const proxy = await new LatencyProxy({ upstreamPort: provider.port, oneWayDelayMs: 0 }).start();
    proxies.push(proxy);
    const target = parseTarget(
      {
        name: 'bench',
        host: '127.0.0.1',
        port: proxy.port,
        tls: 'none',
        auth: { secretId: 'bench', mechanism: 'CRAM-MD5' },
        command: answers.map(([domain]) => `ETRN ${domain}`),
        timeoutSeconds: 10,
      },
      'bench',
    );
    const report = await releaseSignal(target, {}, { credentials, helloName: 'mx.customer.test' });
    expect(report.replies.map((r) => `${r.command} ${r.code}`)).toEqual(
      answers.map(([domain, code]) => `ETRN ${domain} ${code}`),
    );
    await proxy.idle();
    expect(proxy.connections).toHaveLength(1);
    return proxy.connections[0]!.roundTrips;
  }

  let table: Map<string, Figures>;
  beforeAll(() => {
    table = documented();
  });

  it('says what the bench recorded in its latest run (bench/README.md)', () => {
    expect(table.size).toBeGreaterThan(0);
    expect(Object.fromEntries(table)).toEqual(Object.fromEntries(recorded()));
  });

  it("gives dequeue's round trips as the code takes them now", async () => {
    for (const [scenario, figures] of table) {
      expect({ scenario, dequeue: await countDequeue(scenario) }).toEqual({
        scenario,
        dequeue: figures.dequeue,
      });
    }
  });

  it('is the only place in the docs that gives a number of ETRN round trips', () => {
    const pages = [
      'README.md',
      ...readdirSync(join(ROOT, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ];
    const figure =
      /\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)\s+(?:(?!per\b)[a-z-]+\s+)?round[- ]trips?\b/gi;
    const elsewhere = pages.flatMap((page) => {
      let text = read(page);
      if (page === 'docs/real-servers.md') {
        const own = section(text, '### Round trips');
        text = text.replace(own, own.replace(/^\|.*$/gm, ''));
      }
      // A paragraph about the release signal: it names ETRN or fetchmail.
      return text
        .split(/\n\s*\n/)
        .filter((paragraph) => /\bETRN|fetchmail/.test(paragraph))
        .flatMap((paragraph) => [...paragraph.matchAll(figure)].map((m) => `${page}: ${m[0]}`));
    });
    expect(elsewhere).toEqual([]);
  });
});
