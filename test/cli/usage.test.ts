/**
 * The command line as a stranger meets it, through the real binary (bin/dequeue.js): the top help
 * names every command, `-h`, `help [COMMAND]` and `--version` answer, and a usage mistake gets
 * one line saying what is wrong, one line pointing at the command's --help, and exit status 2.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { version } from '../../package.json';
import { runDequeue } from '../support/dequeue-process';

// One start first: it builds the CLI's bundle when the sources changed, which the concurrent
// starts below would otherwise each do at once.
beforeAll(async () => {
  await runDequeue(['--version'], 60_000);
});

describe.concurrent('help and --version', () => {
  it('--help, -h and `help` print the same overview, naming every command; exit 0', async () => {
    const [help, h, word] = await Promise.all([
      runDequeue(['--help']),
      runDequeue(['-h']),
      runDequeue(['help']),
    ]);
    for (const r of [help, h, word]) {
      expect(r).toMatchObject({ status: 0, stderr: '' });
      expect(r.stdout).toBe(help.stdout);
    }
    for (const command of [
      'dequeue --config FILE',
      'dequeue config push | pull | diff',
      'dequeue status',
      'dequeue deliver',
      'dequeue help [COMMAND]',
      'dequeue --version',
    ])
      expect(help.stdout.replaceAll('\n', ' \n')).toContain(`\n  ${command} `);
  });

  it("`help COMMAND` and `COMMAND -h` print that command's usage", async () => {
    const runs = await Promise.all(
      ['config', 'status', 'deliver'].map(async (command) => {
        const [word, h] = await Promise.all([
          runDequeue(['help', command]),
          runDequeue([command, '-h']),
        ]);
        return { command, word, h };
      }),
    );
    for (const { command, word, h } of runs) {
      expect(word).toMatchObject({ status: 0, stderr: '' });
      expect(word.stdout).toMatch(new RegExp(`^Usage:\\n {2}dequeue ${command} `));
      expect(h).toMatchObject({ status: 0, stdout: word.stdout });
      // Read in a terminal: no line wraps at 100 columns, no line said twice.
      const lines = word.stdout.trimEnd().split('\n');
      expect(lines.filter((l) => l.length > 100)).toEqual([]);
      const said = lines.map((l) => l.trim()).filter((l) => l.length > 20);
      expect(said.filter((l, i) => said.indexOf(l) !== i)).toEqual([]);
    }
  });

  it('`help config push` is `config push --help`', async () => {
    const [word, flag] = await Promise.all([
      runDequeue(['help', 'config', 'push']),
      runDequeue(['config', 'push', '--help']),
    ]);
    expect(word).toMatchObject({ status: 0, stderr: '', stdout: flag.stdout });
    expect(word.stdout).toMatch(/^Usage:\n {2}dequeue config push /);
  });

  it('--version prints the version and the Node.js it runs on; exit 0', async () => {
    const r = await runDequeue(['--version']);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    const unsupported = Number(process.versions.node.split('.')[0]) < 22 ? ', unsupported' : '';
    expect(r.stdout).toBe(`dequeue ${version} (Node.js ${process.versions.node}${unsupported})\n`);
  });
});

/** [argv, the line a person reads, the command whose --help is pointed at] */
const MISTAKES: readonly (readonly [string[], string, string])[] = [
  [[], 'dequeue: --config FILE is required', 'dequeue'],
  [['--bogus'], 'dequeue: unknown option --bogus', 'dequeue'],
  [
    ['--config', 'x.json', '--jsn'],
    'dequeue: unknown option --jsn: did you mean --json?',
    'dequeue',
  ],
  [['--config'], 'dequeue: --config needs a value', 'dequeue'],
  [['--config', '--json'], 'dequeue: --config needs a value', 'dequeue'],
  [['--config', 'x.json', '--json=yes'], 'dequeue: --json takes no value', 'dequeue'],
  [
    ['--config', 'x.json', 'extra'],
    'dequeue: unexpected argument "extra": every value follows its flag',
    'dequeue',
  ],
  [
    ['--config', 'a.json', '--config', 'b.json'],
    'dequeue: --config is given twice: give it once',
    'dequeue',
  ],
  [
    ['--config', 'x.json', '--state', ''],
    'dequeue: --state needs a value (it was empty)',
    'dequeue',
  ],
  [['--config=', '--dry-run'], 'dequeue: --config needs a value (it was empty)', 'dequeue'],
  [
    ['--config', 'x.json', '--version'],
    'dequeue: --version is given alone: dequeue --version',
    'dequeue',
  ],
  [['--version', '--json'], 'dequeue: --version is given alone: dequeue --version', 'dequeue'],
  [
    ['status', '--version'],
    'dequeue status: --version is given alone: dequeue --version',
    'dequeue status',
  ],
  [['stauts'], 'dequeue: unknown command "stauts": did you mean status?', 'dequeue'],
  [
    ['help', 'bogus'],
    'dequeue: unknown command "bogus" (commands: config, status, deliver, help; a release cycle: dequeue --config FILE)',
    'dequeue',
  ],
  [['status'], 'dequeue status: give either --state FILE or --table NAME', 'dequeue status'],
  [
    ['status', '--stat', 's.json'],
    'dequeue status: unknown option --stat: did you mean --state?',
    'dequeue status',
  ],
  [
    ['status', '--state', ''],
    'dequeue status: --state needs a value (it was empty)',
    'dequeue status',
  ],
  [['config'], 'dequeue config: say push, pull or diff', 'dequeue config'],
  [
    ['config', 'pish'],
    'dequeue config: unknown config command "pish": did you mean push?',
    'dequeue config',
  ],
  [['config', 'push'], 'dequeue config push: --config FILE is required', 'dequeue config'],
  [
    ['config', 'pull', '--config', 'x.json'],
    'dequeue config pull: --config is not an option of pull',
    'dequeue config',
  ],
  [
    ['config', 'pull', '--prefix', '/a', '--prefix', '/b'],
    'dequeue config pull: --prefix is given twice: give it once',
    'dequeue config',
  ],
  [['deliver', '--mail-dir', 'm'], 'dequeue deliver: --to URL is required', 'dequeue deliver'],
  [
    ['deliver', '--mail-dir', 'm', '--to', 'smtp://127.0.0.1:99999'],
    'dequeue deliver: --to smtp://127.0.0.1:99999: port 99999: must be 1 to 65535',
    'dequeue deliver',
  ],
  [
    ['deliver', '--mail-dir', 'm', '--to', 'lmtp://[::1]:0'],
    'dequeue deliver: --to lmtp://[::1]:0: port 0: must be 1 to 65535',
    'dequeue deliver',
  ],
  [
    ['deliver', '--mail-dir', 'm', '--mail-dir', 'n', '--to', 'smtp://127.0.0.1'],
    'dequeue deliver: --mail-dir is given twice: give it once',
    'dequeue deliver',
  ],
  [
    ['deliver', '--mail-dir', 'm', '--to', 'mx.example'],
    'dequeue deliver: --to mx.example: not a URL (smtp://host[:port], smtps://host[:port], lmtp://host:port or lmtp:/path/to/socket)',
    'dequeue deliver',
  ],
];

describe.concurrent('a usage mistake', () => {
  it.each(MISTAKES)('%j: one line, a pointer to --help, exit 2', async (argv, line, command) => {
    const r = await runDequeue(argv);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(`${line}\nTry '${command} --help' for the usage.\n`);
  });
});
