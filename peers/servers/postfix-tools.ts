/**
 * Postfix's own commands (`postfix`, `postconf`, `postmap`, `postqueue`, `sendmail`) for the
 * private-instance harness (postfix.ts): where they are, why Postfix cannot run here when it
 * cannot, and running one with a bound, never blocking the event loop.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const TOOL_TIMEOUT_MS = 20_000;
const TOOLS = ['postfix', 'postconf', 'postmap', 'postqueue', 'sendmail'] as const;
export type Tool = (typeof TOOLS)[number];

// --- availability ---------------------------------------------------------------------------

function findTool(name: string): string | undefined {
  // Postfix's commands live in sbin, which a non-root PATH often leaves out.
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/local/sbin',
    '/sbin',
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const toolPaths = new Map<Tool, string>();
for (const tool of TOOLS) {
  const path = findTool(tool);
  if (path) toolPaths.set(tool, path);
}

function missingReason(): string | undefined {
  const missing = TOOLS.filter((t) => !toolPaths.has(t));
  if (missing.length) {
    return (
      `Postfix is missing (no ${missing.join(', ')} on PATH or in /usr/sbin): install Debian's package ` +
      '(`echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; ' +
      'apt-get install -y postfix`, as .ci/run does); the tests against a real ETRN server cannot run without it'
    );
  }
  if (process.platform !== 'linux')
    return `the private Postfix harness needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) {
    return 'a private Postfix instance can only be started by root (its master binds sockets and drops to the postfix user); run the tests as root, as CI does';
  }
  return undefined;
}

/** Why Postfix cannot run here, or undefined when it can. */
export const postfixMissing: string | undefined = missingReason();

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a Postfix command with a bound, never blocking the event loop. */
export function run(tool: Tool, args: readonly string[], input?: string): Promise<ToolResult> {
  const path = toolPaths.get(tool);
  if (!path) return Promise.reject(new Error(postfixMissing ?? `${tool} not found`));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}`,
    LANG: 'C',
  };
  delete env.MAIL_CONFIG;
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `${tool} ${args.join(' ')} did not finish within ${TOOL_TIMEOUT_MS} ms; stderr: ${stderr.trim()}`,
        ),
      );
    }, TOOL_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

export async function mustRun(
  tool: Tool,
  args: readonly string[],
  input?: string,
): Promise<ToolResult> {
  const result = await run(tool, args, input);
  if (result.code !== 0) {
    throw new Error(
      `${tool} ${args.join(' ')} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`,
    );
  }
  return result;
}
