/**
 * The two events the function accepts (docs/lambda.md "Events"), validated strictly so that a typo such
 * as `{"dryrun": true}` is refused instead of quietly running (and counting) a real cycle.
 *
 * - Scheduled: `{"source": "schedule", "scheduleArn", "scheduledTime", "executionId",
 *   "attemptNumber"}`, the EventBridge Scheduler context attributes the stack templates into the
 *   input (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
 *   The slot is `scheduleArn#scheduledTime`: a retry keeps the scheduled time and gets a new
 *   execution id, so the execution id cannot identify the slot.
 * - Manual: `{"force"?: true, "targets"?: [...], "dryRun"?: true}`; `{}` is one ordinary,
 *   unscheduled (always counted) cycle. `force` and `dryRun` never count.
 */
import * as v from 'valibot';
import { TARGET_NAME } from './core/config';
import { ConfigError } from './core/errors';
import type { CycleRequest } from './core/run-cycle';

const nonEmpty = (what: string) =>
  v.pipe(
    v.string(`must be a string (${what})`),
    v.minLength(1, 'must not be empty'),
    v.maxLength(1024, 'must be at most 1024 characters'),
  );

const scheduledSchema = v.strictObject({
  source: v.literal('schedule', 'must be "schedule"'),
  scheduleArn: v.pipe(
    nonEmpty('the schedule ARN'),
    v.startsWith('arn:', 'must be an ARN (arn:aws:scheduler:...)'),
  ),
  scheduledTime: v.pipe(
    nonEmpty('an ISO 8601 time'),
    v.check(
      (s) => !Number.isNaN(Date.parse(s)),
      'must be an ISO 8601 time such as 2026-01-01T00:00:00Z',
    ),
  ),
  executionId: nonEmpty('the execution id'),
  attemptNumber: v.pipe(
    v.union([v.number(), v.string()], 'must be a positive whole number (as a number or a string)'),
    v.check(
      (n) => /^[1-9][0-9]*$/.test(String(n)),
      'must be a positive whole number (as a number or a string)',
    ),
  ),
});

const manualSchema = v.strictObject({
  force: v.optional(v.boolean('must be true or false')),
  dryRun: v.optional(v.boolean('must be true or false')),
  targets: v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string('must be a target name'),
          v.regex(TARGET_NAME, 'must be a target name (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)'),
        ),
        'must be an array of target names',
      ),
      v.minLength(1, 'must name at least one target (leave it out for all)'),
      v.maxLength(10_000, 'must name at most 10000 targets'),
    ),
  ),
});

export type ScheduledEvent = v.InferOutput<typeof scheduledSchema>;
export type ManualEvent = v.InferOutput<typeof manualSchema>;

export interface ParsedEvent {
  readonly kind: 'scheduled' | 'manual';
  /** What to ask of runCycle, without the deadline (the handler adds it). */
  readonly request: Omit<CycleRequest, 'deadline'>;
  /** For the logs: which delivery this was. */
  readonly delivery: Record<string, unknown>;
}

const WHERE = 'invocation event';

function fail(issues: readonly v.BaseIssue<unknown>[]): never {
  const issue = issues[0]!;
  const field = (issue.path ?? []).map((p) => String((p as { key: unknown }).key)).join('.');
  const message =
    issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never'
      ? 'is not a known field'
      : issue.message;
  throw new ConfigError(
    WHERE,
    field,
    `${message}. Expected a scheduled event {"source":"schedule","scheduleArn","scheduledTime","executionId","attemptNumber"} or a manual one {"force"?,"targets"?,"dryRun"?}`,
  );
}

/** The slot a scheduled event stands for: the same for every delivery and retry of it. */
export function slotOf(event: Pick<ScheduledEvent, 'scheduleArn' | 'scheduledTime'>): string {
  return `${event.scheduleArn}#${event.scheduledTime}`;
}

export function parseInvocationEvent(input: unknown): ParsedEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(WHERE, '', 'must be a JSON object: {} runs one cycle');
  }
  if ('source' in input) {
    const parsed = v.safeParse(scheduledSchema, input);
    if (!parsed.success) fail(parsed.issues);
    const event = parsed.output;
    return {
      kind: 'scheduled',
      request: { slot: slotOf(event) },
      delivery: {
        scheduleArn: event.scheduleArn,
        scheduledTime: event.scheduledTime,
        executionId: event.executionId,
        attemptNumber: Number(event.attemptNumber),
      },
    };
  }
  const parsed = v.safeParse(manualSchema, input);
  if (!parsed.success) fail(parsed.issues);
  const event = parsed.output;
  return {
    kind: 'manual',
    request: { force: event.force, dryRun: event.dryRun, targets: event.targets },
    delivery: {
      manual: true,
      ...(event.force ? { force: true } : {}),
      ...(event.dryRun ? { dryRun: true } : {}),
      ...(event.targets ? { targets: event.targets.length } : {}),
    },
  };
}
