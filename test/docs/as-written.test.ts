/**
 * Everything the README and docs/ show runs as written: each JSON configuration (a whole document,
 * a target, the values of `aws ssm put-parameter`) passes the real parser, and each `dequeue`
 * command line, run in dry-run form against the configuration the page gives, exits 0.
 */
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  parseConfigDocument,
  parseJsonText,
  parseSettings,
  parseTarget,
} from '../../lambda/core/config';
import { runCli } from '../support/cli-run';

const root = join(import.meta.dirname, '..', '..');

interface Block {
  readonly page: string;
  readonly lang: string;
  readonly text: string;
  /** The file name the page gives the block (a line like "`my.json`:" just before it), if any. */
  readonly named?: string;
}

async function pages(): Promise<Map<string, string>> {
  const names = [
    'README.md',
    ...(await readdir(join(root, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ];
  return new Map(
    await Promise.all(names.map(async (n) => [n, await readFile(join(root, n), 'utf8')] as const)),
  );
}

function blocks(page: string, text: string): Block[] {
  const out: Block[] = [];
  const fence = /^```(\w*)\n([\s\S]*?)^```$/gm;
  for (let m; (m = fence.exec(text)); ) {
    const before = text.slice(0, m.index).trimEnd().split('\n').at(-1) ?? '';
    const named = /^`([\w.-]+\.json)`(?: \([^)]*\))?:$/.exec(before)?.[1];
    out.push({ page, lang: m[1]!, text: m[2]!, named });
  }
  return out;
}

/** A command's words, quotes removed, continuation lines joined, shell plumbing after it cut off. */
function words(line: string): string[] {
  const cut = line.replace(/\s(>>?|2>>?|\||&&|;|#).*$/, '');
  return (cut.match(/'[^']*'|"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^['"]|['"]$/g, ''));
}

/** The argv of every dequeue run a page shows (npx dequeue, node .../bin/dequeue.js, systemd's ExecStart). */
function commands(block: Block): string[][] {
  const joined = block.text.replace(/\\\n\s*/g, ' ').split('\n');
  const found: string[][] = [];
  for (const line of joined) {
    const m = /(?:^|\s|=)(?:npx dequeue|\S*bin\/dequeue\.js|^dequeue)\s+(--.*)$/.exec(line.trim());
    if (m) found.push(words(m[1]!));
  }
  return found;
}

let all: Block[];
let work: string;
beforeAll(async () => {
  all = [...(await pages())].flatMap(([page, text]) => blocks(page, text));
  work = await mkdtemp(join(tmpdir(), 'dequeue-docs-'));
});

describe('the README and docs/ as written', () => {
  it('every JSON block is JSON, and every configuration, target and settings object in them is valid', () => {
    let documents = 0;
    let targets = 0;
    for (const block of all.filter((b) => b.lang === 'json')) {
      const value = parseJsonText(block.text, `${block.page} block`) as Record<string, unknown>;
      if (Array.isArray(value.targets)) {
        parseConfigDocument(value, `${block.page}: ${block.text.slice(0, 40)}`);
        documents++;
      } else if (typeof value.name === 'string' && typeof value.host === 'string') {
        parseTarget(value, `${block.page}: target ${value.name}`);
        targets++;
      }
    }
    process.stdout.write(
      `docs: ${documents} configuration documents and ${targets} targets checked\n`,
    );
    expect(documents).toBeGreaterThanOrEqual(2);
  });

  it('every `aws ssm put-parameter --value` is a valid settings or target object', () => {
    let checked = 0;
    for (const block of all.filter((b) => b.lang === 'sh')) {
      const text = block.text.replace(/\\\n\s*/g, ' ');
      for (const m of text.matchAll(/aws ssm put-parameter --name (\S+).*?--value '([^']*)'/g)) {
        const [, name, value] = m;
        const json = parseJsonText(value!, `${block.page}: ${name}`);
        if (name!.endsWith('/settings')) parseSettings(json, `${block.page}: ${name}`);
        else if (name!.includes('/targets/'))
          expect(parseTarget(json, `${block.page}: ${name}`).name).toBe(name!.split('/').at(-1));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });

  it('every dequeue command runs in dry-run form with the configuration its page gives, exit 0', async () => {
    const readmeConfig = all.find((b) => b.page === 'README.md' && b.named === 'my.json')!;
    expect(readmeConfig, 'README names its example configuration `my.json`').toBeDefined();
    let ran = 0;
    const failures: unknown[] = [];
    for (const block of all) {
      for (const argv of commands(block)) {
        if (argv[0] !== '--config') continue;
        const dir = await mkdtemp(join(work, 'run-'));
        const configBlock =
          all.find((b) => b.page === block.page && b.named === argv[1]?.split('/').at(-1)) ??
          readmeConfig;
        const config = parseConfigDocument(JSON.parse(configBlock.text), configBlock.page);
        const secretIds = new Set(config.targets.flatMap((t) => (t.auth ? [t.auth.secretId] : [])));
        const secrets = Object.fromEntries(
          [...secretIds].map((id) => [id, { username: 'u', password: 'p' }]),
        );
        const files: Record<string, string> = {};
        const mapped = argv.map((word, i) => {
          const flag = argv[i - 1];
          if (
            flag === '--config' ||
            flag === '--secrets' ||
            flag === '--state' ||
            flag === '--mail-dir'
          ) {
            return (files[flag] = join(dir, flag.slice(2)));
          }
          return word;
        });
        await writeFile(files['--config']!, configBlock.text);
        if (files['--secrets'])
          await writeFile(files['--secrets'], JSON.stringify(secrets), { mode: 0o600 });
        const { status, stdout, stderr } = await runCli([...mapped, '--dry-run'], {
          resolveHost: async () => undefined, // the examples name hosts under .example (RFC 2606)
        });
        if (status !== 0)
          failures.push({ page: block.page, command: argv.join(' '), status, stderr, stdout });
        ran++;
      }
    }
    process.stdout.write(`docs: ${ran} dequeue commands run in dry-run form\n`);
    expect(failures).toEqual([]);
    expect(ran).toBeGreaterThanOrEqual(3);
  });
});
