/**
 * cfn-lint (AWS's CloudFormation linter: resource specifications, property types, allowed values,
 * IAM policy grammar) over the synthesised templates, without and with the VPC and every optional
 * resource switched on. CloudFormation would refuse an error at deploy time; a warning is printed.
 * Synthesised without bundling: the linter reads templates only (synth-dequeue.ts).
 *
 * cfn-lint is a Python tool preinstalled on these machines, not an npm package: missing in CI the
 * suite fails, missing elsewhere it is skipped with the reason (the rule of test/servers/installed.ts).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { synthDequeue, type SynthesisedDequeue } from '../lib/synth-dequeue';
import { describeWithInstalled } from '../servers/installed';

const run = promisify(execFile);

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

const CFN_LINT = onPath('cfn-lint');
const VARIANTS: Record<string, Record<string, unknown>> = {
  default: {},
  'static egress, alarm e-mail, mail lifecycle, own KMS keys': {
    staticEgress: true,
    egressPorts: [25, 366, 2525],
    alarmEmail: 'ops@example.com',
    mailExpirationDays: 400,
    mailInfrequentAccessAfterDays: 30,
    ssmKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    secretsKmsKeyArn:
      'arn:aws:kms:eu-central-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab',
  },
  'S3-managed mail keys, a daily cron': {
    mailEncryption: 's3',
    schedule: 'cron(0 6 * * ? *)',
  },
};

interface Match {
  readonly Level: 'Error' | 'Warning' | 'Informational';
  readonly Message: string;
  readonly Rule: { readonly Id: string };
  readonly Location: { readonly Path: readonly (string | number)[] };
  readonly Filename: string;
}

describeWithInstalled(
  'cfn-lint',
  CFN_LINT
    ? undefined
    : 'cfn-lint is missing: it is installed with pip (pip install cfn-lint), not from npm',
  'cfn-lint over the synthesised templates',
  () => {
    const synths: [string, SynthesisedDequeue][] = [];
    let matches: Match[] = [];

    beforeAll(async () => {
      for (const [name, context] of Object.entries(VARIANTS))
        synths.push([name, synthDequeue(context, { bundle: false })]);
      const files = synths.map(([, s]) => join(s.outdir, s.stack.templateFile));
      // Exit status is a bit mask (2 errors, 4 warnings, 8 informational): read the findings instead.
      const { stdout } = await run(CFN_LINT!, ['--format', 'json', ...files], {
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
      }).catch((e: { stdout?: string; code?: number; message: string }) => {
        if (typeof e.stdout === 'string' && e.stdout.trim().startsWith('['))
          return { stdout: e.stdout };
        throw new Error(`cfn-lint failed to run: ${e.message}`);
      });
      matches = JSON.parse(stdout || '[]');
    }, 180_000);
    afterAll(() => {
      for (const [, s] of synths) s.dispose();
    });

    it('finds no errors in any template', () => {
      const variantOf = (file: string) =>
        synths.find(([, s]) => file.startsWith(s.outdir))?.[0] ?? file;
      const line = (m: Match) =>
        `${variantOf(m.Filename)}: ${m.Rule.Id} ${m.Location.Path.join('/')}: ${m.Message}`;
      const others = matches.filter((m) => m.Level !== 'Error');
      if (others.length)
        console.info(`cfn-lint warnings and notes (not failing):\n${others.map(line).join('\n')}`);
      expect(synths).toHaveLength(Object.keys(VARIANTS).length);
      expect(matches.filter((m) => m.Level === 'Error').map(line)).toEqual([]);
    });
  },
);
