/**
 * ETRN with EHLO and AUTH on a slow line: sequential round trips and wall time, dequeue beside
 * fetchmail's ETRN mode, on the same path in the same run.
 *
 *   npx tsx bench/etrn-round-trips.ts [--runs 7] [--delay 50] [--skip-cli]
 *
 * The path: client -> bench/latency-proxy.ts (adds --delay ms each way, counts round trips; see
 * that file for exactly what is counted) -> the scripted provider of peers/scripted-provider.ts,
 * advertising `PIPELINING`, `ETRN` and `AUTH PLAIN LOGIN CRAM-MD5`, one account.
 *
 * Fair configuration: both clients authenticate with CRAM-MD5 over plain TCP, release the same two
 * domains (a.test, b.test) and QUIT. CRAM-MD5 is what fetchmail picks first when offered (its
 * SMTP AUTH tries CRAM-MD5, then PLAIN, then LOGIN) and what dequeue picks by default on an
 * unencrypted connection (PLAIN/LOGIN would send the password; dequeue refuses that unless
 * `allowPlaintextAuth`). The target pins `"mechanism": "CRAM-MD5"` so that the comparison cannot
 * drift. fetchmail gets its password from an rc file (mode 0600), as it requires:
 *
 *   poll 127.0.0.1 protocol ETRN service PORT esmtpname "customer" esmtppassword "..." fetchdomains a.test,b.test
 *
 * run as `fetchmail -v -N -f RCFILE` with FETCHMAILHOME and HOME in a temp folder.
 *
 * Clients measured, interleaved run by run so that machine noise hits all alike:
 * - dequeue in-process: `releaseSignal()` from call to resolution (no Node start-up: the fair
 *   figure against a C program, since a scheduled Lambda is warm or pays start-up once per cycle);
 * - dequeue CLI: `node bin/dequeue.js --config ... --secrets ... --json` (what `npx dequeue` runs),
 *   from spawn to exit: Node and tsx start-up included;
 * - fetchmail: from spawn to exit.
 *
 * Scenarios: both domains answer 250; a.test answers 251 (no mail) and b.test 250. fetchmail's ETRN
 * mode stops at the first 251 and never asks for b.test; dequeue sends both.
 *
 * Prints a markdown table headed by the command that made it. Asserts nothing: figures vary by
 * machine. bench/README.md says how to read it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseTarget } from '../lambda/core/config';
import type { Credentials } from '../lambda/core/ports';
import { releaseSignal } from '../lambda/core/signal/session';
import { ScriptedProvider } from '../peers/scripted-provider';
import { LatencyProxy, type ConnectionTrace } from './latency-proxy';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'dequeue.js');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    delay: { type: 'string', default: '50' },
    'skip-cli': { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const DELAY = Number(values.delay);
if (!Number.isInteger(RUNS) || RUNS < 1 || !Number.isFinite(DELAY) || DELAY < 0) {
  process.stderr.write(
    'usage: npx tsx bench/etrn-round-trips.ts [--runs N>=1] [--delay MS>=0] [--skip-cli]\n',
  );
  process.exit(2);
}
const PROCESS_TIMEOUT_MS = 60_000;

const account = { username: 'customer', password: 'bench-s3cret' };
const credentials: Credentials = { get: async () => account };
const DOMAINS = ['a.test', 'b.test'];
const EXTENSIONS = ['PIPELINING', 'ETRN', 'AUTH PLAIN LOGIN CRAM-MD5'];

interface Scenario {
  readonly label: string;
  readonly etrn: Record<string, string>;
}
const SCENARIOS: readonly Scenario[] = [
  { label: 'a.test 250, b.test 250', etrn: {} },
  {
    label: 'a.test 251, b.test 250',
    etrn: { 'a.test': '251 OK, no messages waiting for node a.test' },
  },
];

interface Sample {
  readonly wallMs: number;
  readonly trace: ConnectionTrace;
  /** What the client itself concluded, for the table's last column. */
  readonly verdict: string;
}

type Client = (port: number, work: string) => Promise<{ verdict: string }>;

// --- the clients -------------------------------------------------------------------------------

const targetFields = (port: number) => ({
  name: 'bench',
  host: '127.0.0.1',
  port,
  tls: 'none',
  auth: { secretId: 'bench', mechanism: 'CRAM-MD5' },
  command: DOMAINS.map((d) => `ETRN ${d}`),
  timeoutSeconds: 10,
});

const dequeueInProcess: Client = async (port) => {
  const report = await releaseSignal(
    parseTarget(targetFields(port), 'bench'),
    {},
    { credentials, helloName: 'mx.customer.test' },
  );
  return { verdict: `${report.outcome} (${report.replies.map((r) => r.code).join(', ')})` };
};

function runProcess(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not exit within ${PROCESS_TIMEOUT_MS} ms: ${stderr}`));
    }, PROCESS_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolvePromise({ status, stdout, stderr });
    });
  });
}

const dequeueCli: Client = async (port, work) => {
  const config = join(work, `dequeue-${port}.json`);
  const secrets = join(work, 'secrets.json');
  await writeFile(
    config,
    JSON.stringify({ settings: { helloName: 'mx.customer.test' }, targets: [targetFields(port)] }),
  );
  await writeFile(secrets, JSON.stringify({ bench: account }), { mode: 0o600 });
  const run = await runProcess(process.execPath, [
    CLI,
    '--config',
    config,
    '--secrets',
    secrets,
    '--json',
  ]);
  const line = run.stdout.trim().split('\n')[0] ?? '';
  let verdict = `exit ${run.status}`;
  try {
    const result = JSON.parse(line) as { outcome: string; replies: { code: number | null }[] };
    verdict = `${result.outcome} (${result.replies.map((r) => r.code).join(', ')}), exit ${run.status}`;
  } catch {
    throw new Error(`the CLI printed no result line (exit ${run.status}): ${run.stderr}`);
  }
  return { verdict };
};

const fetchmail: Client = async (port, work) => {
  const rc = join(work, `fetchmailrc-${port}`);
  await writeFile(
    rc,
    `poll 127.0.0.1 protocol ETRN service ${port} esmtpname "${account.username}" esmtppassword "${account.password}" fetchdomains ${DOMAINS.join(',')}\n`,
    { mode: 0o600 },
  );
  const run = await runProcess('fetchmail', ['-v', '-N', '-f', rc], {
    ...process.env,
    FETCHMAILHOME: work,
    HOME: work,
    LC_ALL: 'C',
  });
  const said = `${run.stdout}\n${run.stderr}`;
  const replies = [...said.matchAll(/ETRN< (\d{3})/g)].map((m) => m[1]);
  if (!/ETRN> QUIT/.test(said))
    throw new Error(`fetchmail did not get as far as QUIT (exit ${run.status}):\n${said}`);
  return { verdict: `exit ${run.status} (${replies.join(', ')})` };
};

function hasFetchmail(): boolean {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    try {
      accessSync(join(dir, 'fetchmail'), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

// --- measuring ------------------------------------------------------------------------------------

async function measure(client: Client, proxy: LatencyProxy, work: string): Promise<Sample> {
  const before = proxy.connections.length;
  const started = performance.now();
  const { verdict } = await client(proxy.port, work);
  const wallMs = performance.now() - started;
  await proxy.idle();
  const traces = proxy.connections.slice(before);
  if (traces.length !== 1)
    throw new Error(`expected one connection per signal, saw ${traces.length}`);
  return { wallMs, trace: traces[0]!, verdict };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** The client's lines as commands: EHLO without its name, the AUTH response hidden. */
function commandsOf(lines: readonly string[]): string[] {
  return lines.map((line, i) => {
    const previous = lines[i - 1] ?? '';
    if (/^AUTH /i.test(previous) && !/^[A-Z]{4}\b/.test(line)) return '(AUTH response)';
    if (/^(EHLO|HELO) /i.test(line)) return line.split(' ')[0]!.toUpperCase();
    return line;
  });
}

async function main(): Promise<void> {
  const fetchmailPresent = hasFetchmail();
  const clients: [string, Client][] = [['dequeue, in-process (`releaseSignal`)', dequeueInProcess]];
  if (!values['skip-cli']) clients.push(['dequeue CLI (`node bin/dequeue.js`)', dequeueCli]);
  if (fetchmailPresent)
    clients.push([`fetchmail ${fetchmailVersion()} (\`fetchmail -v -N -f RC\`)`, fetchmail]);
  else
    process.stderr.write(
      'fetchmail is not installed (apt-get install fetchmail): its rows are left out\n',
    );

  const work = await mkdtemp(join(tmpdir(), 'dequeue-bench-etrn-'));
  const rigs = await Promise.all(
    SCENARIOS.map(async (scenario) => {
      const provider = await new ScriptedProvider({
        extensions: EXTENSIONS,
        account,
        etrn: scenario.etrn,
      }).start();
      const proxy = await new LatencyProxy({
        upstreamPort: provider.port,
        oneWayDelayMs: DELAY,
      }).start();
      return { scenario, provider, proxy };
    }),
  );
  const samples = new Map<string, Sample[]>();
  /** The CLI's start-up alone (`--help`: no network), to separate it from the dialogue. */
  const startups: number[] = [];
  const key = (s: number, c: number) => `${s}/${c}`;
  try {
    // One warm-up round, not recorded: first-use costs (tsx's cache, fetchmail's page cache).
    for (const rig of rigs)
      for (const [, client] of clients) await measure(client, rig.proxy, work);
    for (let run = 0; run < RUNS; run++) {
      for (const [s, rig] of rigs.entries()) {
        for (const [c, [, client]] of clients.entries()) {
          const sample = await measure(client, rig.proxy, work);
          samples.set(key(s, c), [...(samples.get(key(s, c)) ?? []), sample]);
        }
      }
      if (!values['skip-cli']) {
        const started = performance.now();
        await runProcess(process.execPath, [CLI, '--help']);
        startups.push(performance.now() - started);
      }
      process.stderr.write(`run ${run + 1}/${RUNS} done\n`);
    }
  } finally {
    for (const rig of rigs) {
      await rig.proxy.stop();
      await rig.provider.stop();
    }
    await rm(work, { recursive: true, force: true });
  }

  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
        cwd: ROOT,
        encoding: 'utf8',
      }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const args = `--runs ${RUNS} --delay ${DELAY}${values['skip-cli'] ? ' --skip-cli' : ''}`;
  const lines: string[] = [
    `\`npx tsx bench/etrn-round-trips.ts ${args}\` — node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, commit ${commit}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    `One-way delay ${DELAY} ms (RTT ${2 * DELAY} ms) through bench/latency-proxy.ts; peer: scripted provider offering ${EXTENSIONS.join(', ')}; ` +
      `both clients: EHLO, AUTH CRAM-MD5 (plain TCP), ETRN ${DOMAINS.join(' and ')}, QUIT. Median and range of ${RUNS} runs after one warm-up.`,
    '',
    '| scenario | client | round trips | commands sent | median wall (ms) | min–max (ms) | outcome |',
    '|---|---|---:|---|---:|---:|---|',
  ];
  for (const [s, rig] of rigs.entries()) {
    for (const [c, [name]] of clients.entries()) {
      const list = samples.get(key(s, c)) ?? [];
      const walls = list.map((x) => x.wallMs);
      const trips = [...new Set(list.map((x) => x.trace.roundTrips))].join('/');
      const commands = commandsOf(list[0]?.trace.clientLines ?? []);
      const verdicts = [...new Set(list.map((x) => x.verdict))].join('; ');
      lines.push(
        `| ${rig.scenario.label} | ${name} | ${trips} | ${commands.length}: ${commands.join(' · ')} | ${median(walls).toFixed(0)} | ${Math.min(...walls).toFixed(0)}–${Math.max(...walls).toFixed(0)} | ${verdicts} |`,
      );
    }
  }

  // What our pairing rule costs (lambda/core/signal/session.ts): never more than one unanswered
  // ETRN, the last with the QUIT, so one round trip per domain; beside the protocol's minimum
  // with everything pipelined, which servers that fork per ETRN (sendmail, Exim 4.96) break.
  const handshake = 1 /* connect + greeting */ + 1 /* EHLO */ + 2; /* AUTH CRAM-MD5 */
  const minimum = handshake + 1; /* ETRNs + QUIT, pipelined */
  const rule = handshake + DOMAINS.length; /* one ETRN per round trip, the last with QUIT */
  lines.push('');
  for (const [s, rig] of rigs.entries()) {
    const ours = samples.get(key(s, 0)) ?? [];
    const ourTrips = Math.max(...ours.map((x) => x.trace.roundTrips));
    let line = `${rig.scenario.label}: dequeue ${ourTrips} round trips (one unanswered ETRN at a time: ${rule}, ${ourTrips <= rule ? 'met' : 'NOT met'}; everything pipelined would be ${minimum}, a round trip less per extra domain)`;
    const fm = fetchmailPresent ? samples.get(key(s, clients.length - 1)) : undefined;
    if (fm?.length) {
      const ourMedian = median(ours.map((x) => x.wallMs));
      const theirs = median(fm.map((x) => x.wallMs));
      line += `; in-process median ${ourMedian.toFixed(0)} ms vs fetchmail ${theirs.toFixed(0)} ms (${ourMedian < theirs ? 'faster' : 'NOT faster'} by ${Math.abs(theirs - ourMedian).toFixed(0)} ms)`;
      line += `; commands sent: dequeue ${commandsOf(ours[0]!.trace.clientLines).length}, fetchmail ${commandsOf(fm[0]!.trace.clientLines).length}`;
    }
    lines.push(`- ${line}.`);
  }
  if (startups.length) {
    lines.push(
      `- The CLI's start-up alone (\`node bin/dequeue.js --help\`, spawn to exit, no network): median ${median(startups).toFixed(0)} ms.`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

function fetchmailVersion(): string {
  try {
    const text = execFileSync('fetchmail', ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    return /release (\d[\w.]*)/.exec(text)?.[1] ?? '';
  } catch (e) {
    // fetchmail --version exits non-zero when it finds no rc file; its stdout still has the release.
    const out = String((e as { stdout?: string }).stdout ?? '');
    return /release (\d[\w.]*)/.exec(out)?.[1] ?? '';
  }
}

await main();
