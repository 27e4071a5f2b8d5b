/**
 * How the property suites (`*.property.test.ts`) run: in `npm test` a fixed seed and a bounded
 * number of cases, so that CI is repeatable and quick; in `npm run fuzz` the count comes from
 * `DEQUEUE_FUZZ_RUNS` and the seed is fresh each run (or `DEQUEUE_FUZZ_SEED`, to replay a
 * failure). Each suite prints what it ran: its name, the number of cases and the seed.
 */
import fc from 'fast-check';

/** The seed of `npm test`: a failure there reproduces on any machine. */
export const CI_SEED = 20_261_201;

const fuzzRuns = process.env.DEQUEUE_FUZZ_RUNS ? Number(process.env.DEQUEUE_FUZZ_RUNS) : undefined;
export const fuzzing = fuzzRuns !== undefined && Number.isInteger(fuzzRuns) && fuzzRuns > 0;

export interface PropertyBudget {
  /** Cases in `npm test`. */
  readonly ci: number;
  /**
   * The share of DEQUEUE_FUZZ_RUNS this suite runs in `npm run fuzz` (default 1): a suite whose
   * cases open sockets and wait out timeouts runs a tenth as many as a pure parser suite.
   */
  readonly fuzzShare?: number;
}

export function propertyParameters(budget: PropertyBudget): { numRuns: number; seed: number } {
  const seed = process.env.DEQUEUE_FUZZ_SEED
    ? Number(process.env.DEQUEUE_FUZZ_SEED)
    : fuzzing
      ? Date.now() % 2 ** 31
      : CI_SEED;
  const numRuns = fuzzing
    ? Math.max(budget.ci, Math.round(fuzzRuns! * (budget.fuzzShare ?? 1)))
    : budget.ci;
  return { numRuns, seed };
}

/**
 * Check a property and say what was run; on failure throw fast-check's report (the seed, the
 * path and the smallest counterexample it shrank to).
 */
export async function checkProperty<T>(
  name: string,
  property: fc.IAsyncPropertyWithHooks<T> | fc.IPropertyWithHooks<T>,
  budget: PropertyBudget,
): Promise<void> {
  const parameters = propertyParameters(budget);
  const details = await fc.check(property as fc.IAsyncProperty<T>, parameters);
  process.stderr.write(
    `property "${name}": ${details.numRuns} cases, seed ${parameters.seed}${details.failed ? ' FAILED' : ''}\n`,
  );
  if (details.failed) {
    // A counterexample of 8 KiB lines printed byte by byte would bury the report: keep its start.
    const report = fc.defaultReportMessage(details) ?? `property "${name}" failed`;
    throw new Error(
      report.length > 4000 ? `${report.slice(0, 4000)}... (${report.length} characters)` : report,
    );
  }
}
