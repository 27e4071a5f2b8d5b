/**
 * scripts/invoke-local.ts as an operator uses it: the result alone on stdout (so it pipes to jq),
 * the function's logs on stderr with cold_start true on the first call, one-line errors.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../peers/servers/harness';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';

const root = join(import.meta.dirname, '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

async function invokeLocal(args: string[], env: Record<string, string> = {}) {
  const clean = { ...process.env };
  delete clean.AWS_ENDPOINT_URL;
  try {
    const { stdout, stderr } = await promisify(execFile)(
      tsx,
      ['scripts/invoke-local.ts', ...args],
      { cwd: root, env: { ...clean, ...env }, timeout: 60_000 },
    );
    return { status: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { status: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('invoke-local mistakes', () => {
  it('an unknown option is one line and the usage, exit 2, nothing on stdout', async () => {
    const r = await invokeLocal(['--bogus', 'events/dry-run.json'], {
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      "invoke-local: Unknown option '--bogus'",
      expect.stringMatching(/^usage: AWS_ENDPOINT_URL=/),
    ]);
  });

  it('moto_server not running: one line saying so, exit 1, no stack trace', async () => {
    const port = await freePort();
    const r = await invokeLocal(['events/dry-run.json'], {
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `invoke-local: cannot reach http://127.0.0.1:${port} (ECONNREFUSED): is moto_server running? Start it with: moto_server -H 127.0.0.1 -p 5000`,
    ]);
  }, 60_000);
});

describeWithMotoServer('invoke-local against moto_server', () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMotoServer();
  });
  afterAll(async () => moto?.stop());

  it('prints the result alone on stdout; the logs go to stderr, the first with cold_start true', async () => {
    const r = await invokeLocal(
      [
        '--seed-config',
        'events/local/config.json',
        '--seed-secrets',
        'events/local/secrets.json',
        'events/dry-run.json',
      ],
      { AWS_ENDPOINT_URL: moto.endpoint },
    );
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(
      result.results.map((t: { target: string; outcome: string }) => [t.target, t.outcome]).sort(),
    ).toEqual([
      ['isp-auth', 'skipped'],
      ['isp-etrn', 'skipped'],
    ]);
    const logs = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{"level"'))
      .map((l) => JSON.parse(l));
    expect(logs.length).toBeGreaterThan(0);
    expect(logs[0]).toMatchObject({ message: 'cycle starting', cold_start: true });
    expect(r.stdout + r.stderr).not.toContain('not-a-real-password'); // the seeded secret's value is never shown
  }, 60_000);
});
