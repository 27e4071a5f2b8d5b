/**
 * Fan-out (docs/fan-out.md): when a cycle's due targets exceed what one invocation should take on,
 * the cycle hands them to queue-fed workers, one work order per target. This file decides when,
 * and says what a work order is on the wire: which target (its name and the parameter that holds
 * it), the counted cycle, the slot, whether to claim, and when it expires.
 *
 * A work order names a target; it never describes one. Anyone allowed to send to the queue, or to
 * invoke the function with an SQS-shaped event, can write an order, so the worker takes nothing
 * from it that could point a session elsewhere (host, port, secret, relay, settings): it reads the
 * settings and the target from the deployed configuration itself (docs/security.md). The worst a
 * forged order can do is have a configured target signalled as configured.
 */
import * as v from 'valibot';
import { TARGET_NAME, verbOf, type Settings, type Target } from './config';
import { ConfigError } from './errors';

export const DEFAULT_MAX_TARGETS_PER_INVOCATION = 100;
export const DEFAULT_MAX_ATRN_PER_INVOCATION = 3;
export const DEFAULT_EXPIRE_AFTER_SECONDS = 3600;
/**
 * The wire format's version: a worker refuses orders of a version it does not know. Version 1
 * carried the whole target and settings; a worker reads only the name from one (an order queued
 * before an upgrade is still worked, from the configuration).
 */
export const WORK_ORDER_VERSION = 2;

export function isAtrnTarget(target: Target): boolean {
  return target.protocol === 'smtp' && target.commands.some((c) => verbOf(c) === 'ATRN');
}

/**
 * Whether the due targets of a cycle go to the workers: more of them than
 * `fanOut.maxTargetsPerInvocation`, or more ATRN targets (each may hold a session for minutes)
 * than `fanOut.maxAtrnPerInvocation`. All or nothing: a cycle either works everything itself or
 * hands everything over, so its own run stays short and its results are never half local.
 */
export function needsFanOut(due: readonly Target[], settings: Settings): boolean {
  const maxTargets = settings.fanOut?.maxTargetsPerInvocation ?? DEFAULT_MAX_TARGETS_PER_INVOCATION;
  const maxAtrn = settings.fanOut?.maxAtrnPerInvocation ?? DEFAULT_MAX_ATRN_PER_INVOCATION;
  return due.length > maxTargets || due.filter(isAtrnTarget).length > maxAtrn;
}

/** One target to signal, as a worker receives it: a reference to the configuration, never a copy. */
export interface WorkOrder {
  /** The scheduled slot the cycle stands for (absent for an unscheduled run). */
  readonly slot?: string;
  /** The counted cycle: the worker claims (cycle, target) before signalling. */
  readonly cycle: number;
  /** False for a forced run, which signals whatever earlier runs did (no claim). */
  readonly claim: boolean;
  /** The target's name. */
  readonly target: string;
  /**
   * Where the configuration keeps it (the SSM parameter), when the source says; the worker reads
   * it from there, and only from under its own configuration path.
   */
  readonly parameter?: string;
  /** Epoch ms when the cycle queued it, and after which a worker only reports it. */
  readonly queuedAt: number;
  readonly expiresAt: number;
}

/** The order for `target` in this cycle; `parameter` is where the configuration keeps it. */
export function workOrderFor(
  target: Pick<Target, 'name'>,
  run: {
    slot?: string;
    cycle: number;
    claim: boolean;
    settings: Settings;
    now: number;
    parameter?: string;
  },
): WorkOrder {
  const expireAfter = run.settings.fanOut?.expireAfterSeconds ?? DEFAULT_EXPIRE_AFTER_SECONDS;
  return {
    slot: run.slot,
    cycle: run.cycle,
    claim: run.claim,
    target: target.name,
    ...(run.parameter !== undefined ? { parameter: run.parameter } : {}),
    queuedAt: run.now,
    expiresAt: run.now + expireAfter * 1000,
  };
}

export function encodeWorkOrder(order: WorkOrder): string {
  return JSON.stringify({
    v: WORK_ORDER_VERSION,
    slot: order.slot,
    cycle: order.cycle,
    claim: order.claim,
    queuedAt: new Date(order.queuedAt).toISOString(),
    expiresAt: new Date(order.expiresAt).toISOString(),
    target: order.target,
    parameter: order.parameter,
  });
}

const isoTime = v.pipe(
  v.string(),
  v.check((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time'),
);
const targetName = v.pipe(
  v.string('must be a target name'),
  v.regex(TARGET_NAME, 'must be a target name (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)'),
);
const common = {
  slot: v.optional(v.pipe(v.string(), v.maxLength(2048))),
  cycle: v.pipe(v.number(), v.integer(), v.minValue(0)),
  claim: v.boolean(),
  queuedAt: isoTime,
  expiresAt: isoTime,
};
const orderSchema = v.variant('v', [
  v.strictObject({
    v: v.literal(WORK_ORDER_VERSION),
    ...common,
    target: targetName,
    // SSM parameter names: at most 1011 characters of [A-Za-z0-9_.-/].
    parameter: v.optional(
      v.pipe(
        v.string(),
        v.maxLength(1011),
        v.regex(/^\/[A-Za-z0-9_.\-/]+$/, 'must be an SSM parameter name'),
      ),
    ),
  }),
  // Version 1 (before the worker read its own configuration): only the name is used.
  v.object({
    v: v.literal(1),
    ...common,
    settings: v.unknown(),
    target: v.object({ name: targetName }),
  }),
]);

/**
 * Read and validate one order; `where` names it in errors (e.g. `work order <message id>`). What
 * the order says about the target beyond its name (a version 1 order carried a whole target) is
 * never read.
 */
export function decodeWorkOrder(body: string, where: string): WorkOrder {
  let input: unknown;
  try {
    input = JSON.parse(body);
  } catch {
    throw new ConfigError(where, '', 'is not valid JSON');
  }
  const parsed = v.safeParse(orderSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0]!;
    const field = (issue.path ?? []).map((p) => String((p as { key: unknown }).key)).join('.');
    const message =
      field === 'v' || (field === '' && issue.type === 'variant')
        ? `must be a work order of version ${WORK_ORDER_VERSION} (or 1)`
        : issue.message;
    throw new ConfigError(where, field, message);
  }
  const o = parsed.output;
  return {
    slot: o.slot,
    cycle: o.cycle,
    claim: o.claim,
    target: typeof o.target === 'string' ? o.target : o.target.name,
    ...('parameter' in o && o.parameter !== undefined ? { parameter: o.parameter } : {}),
    queuedAt: Date.parse(o.queuedAt),
    expiresAt: Date.parse(o.expiresAt),
  };
}
