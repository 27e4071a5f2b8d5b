/**
 * The tests' rule for a real server or tool that is not installed (the server harnesses
 * themselves live in peers/servers/, shared with the benchmarks and the demo).
 */
import { describe, it } from 'vitest';

/**
 * `describe` for a suite that needs an installed program (Postfix, cfn-lint). Available
 * (`missing` undefined): an ordinary describe. Missing in CI (`CI` set): a suite with one failing
 * test carrying the plain message, so CI can never pass by skipping. Missing elsewhere: skipped,
 * and said on stderr.
 */
export function describeWithInstalled(
  program: string,
  missing: string | undefined,
  name: string,
  body: () => void,
): void {
  if (missing === undefined) {
    describe(name, body);
  } else if (process.env.CI) {
    describe(name, () => {
      it(`needs ${program}`, () => {
        throw new Error(missing);
      });
    });
  } else {
    process.stderr.write(`skipping "${name}": ${missing}\n`);
    describe.skipIf(true)(name, body);
  }
}
