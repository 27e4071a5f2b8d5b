/**
 * Fan-out (docs/fan-out.md): when a cycle's due targets exceed what one invocation should take on,
 * the cycle hands them to queue-fed workers, one work order per target. This file decides when,
 * and says what a work order is on the wire: the target's validated configuration, the settings
 * that shape its session, the counted cycle and the slot. Never a secret: workers read those from
 * the credentials store themselves.
 *
 * A worker re-validates every order with the same rules as the configuration (parseTarget,
 * parseSettings): an order is only data that crossed a queue.
 */
import * as v from 'valibot';
import { parseSettings, parseTarget, verbOf, type Settings, type Target } from './config';
import { ConfigError } from './errors';

export const DEFAULT_MAX_TARGETS_PER_INVOCATION = 100;
export const DEFAULT_MAX_ATRN_PER_INVOCATION = 3;
export const DEFAULT_EXPIRE_AFTER_SECONDS = 3600;
/** The wire format's version: a worker refuses orders of a version it does not know. */
export const WORK_ORDER_VERSION = 1;

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

/** One target to signal, as a worker receives it. */
export interface WorkOrder {
  /** The scheduled slot the cycle stands for (absent for an unscheduled run). */
  readonly slot?: string;
  /** The counted cycle: the worker claims (cycle, target) before signalling. */
  readonly cycle: number;
  /** False for a forced run, which signals whatever earlier runs did (no claim). */
  readonly claim: boolean;
  readonly settings: Settings;
  readonly target: Target;
  /** Epoch ms when the cycle queued it, and after which a worker only reports it. */
  readonly queuedAt: number;
  readonly expiresAt: number;
}

/** The order for `target` in this cycle. */
export function workOrderFor(
  target: Target,
  run: { slot?: string; cycle: number; claim: boolean; settings: Settings; now: number },
): WorkOrder {
  const expireAfter = run.settings.fanOut?.expireAfterSeconds ?? DEFAULT_EXPIRE_AFTER_SECONDS;
  return {
    slot: run.slot,
    cycle: run.cycle,
    claim: run.claim,
    settings: run.settings,
    target,
    queuedAt: run.now,
    expiresAt: run.now + expireAfter * 1000,
  };
}

/** The target in the configuration document's own shape, so the worker validates it the same way. */
function targetDocument(target: Target): Record<string, unknown> {
  const { commands, ...rest } = target;
  return { ...rest, command: [...commands] };
}

export function encodeWorkOrder(order: WorkOrder): string {
  return JSON.stringify({
    v: WORK_ORDER_VERSION,
    slot: order.slot,
    cycle: order.cycle,
    claim: order.claim,
    queuedAt: new Date(order.queuedAt).toISOString(),
    expiresAt: new Date(order.expiresAt).toISOString(),
    settings: order.settings,
    target: targetDocument(order.target),
  });
}

const isoTime = v.pipe(
  v.string(),
  v.check((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time'),
);
const envelopeSchema = v.strictObject({
  v: v.literal(
    WORK_ORDER_VERSION,
    `must be ${WORK_ORDER_VERSION} (this worker's work order version)`,
  ),
  slot: v.optional(v.pipe(v.string(), v.maxLength(2048))),
  cycle: v.pipe(v.number(), v.integer(), v.minValue(0)),
  claim: v.boolean(),
  queuedAt: isoTime,
  expiresAt: isoTime,
  settings: v.unknown(),
  target: v.unknown(),
});

/** Read and validate one order; `where` names it in errors (e.g. `work order <message id>`). */
export function decodeWorkOrder(body: string, where: string): WorkOrder {
  let input: unknown;
  try {
    input = JSON.parse(body);
  } catch {
    throw new ConfigError(where, '', 'is not valid JSON');
  }
  const parsed = v.safeParse(envelopeSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0]!;
    const field = (issue.path ?? []).map((p) => String((p as { key: unknown }).key)).join('.');
    throw new ConfigError(where, field, issue.message);
  }
  const o = parsed.output;
  return {
    slot: o.slot,
    cycle: o.cycle,
    claim: o.claim,
    queuedAt: Date.parse(o.queuedAt),
    expiresAt: Date.parse(o.expiresAt),
    settings: parseSettings(o.settings, where, 'settings'),
    target: parseTarget(o.target, where, 'target'),
  };
}
