/**
 * The event EventBridge Scheduler sends, made from the schedule's own `Target.Input` template:
 * each `<aws.scheduler.*>` context attribute replaced as Scheduler replaces it.
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html
 */
export interface SchedulerDelivery {
  readonly scheduleArn: string;
  /** ISO 8601 without milliseconds, as Scheduler writes it: 2026-01-01T10:15:00Z. */
  readonly scheduledTime: string;
  readonly executionId: string;
  readonly attemptNumber: number;
}

const ATTRIBUTES: Record<string, (d: SchedulerDelivery) => string> = {
  'schedule-arn': (d) => d.scheduleArn,
  'scheduled-time': (d) => d.scheduledTime,
  'execution-id': (d) => d.executionId,
  'attempt-number': (d) => String(d.attemptNumber),
};

export function scheduledEventFrom(input: string, delivery: SchedulerDelivery): unknown {
  const text = input.replace(/<aws\.scheduler\.([a-z-]+)>/g, (placeholder, name: string) => {
    const value = ATTRIBUTES[name];
    if (!value)
      throw new Error(`${placeholder} is not a context attribute of EventBridge Scheduler`);
    return value(delivery);
  });
  return JSON.parse(text);
}

/** A slot of a rate schedule: the time floored to `minutes`, as Scheduler names it. */
export function slotTime(at: number, minutes: number): string {
  return new Date(Math.floor(at / (minutes * 60_000)) * minutes * 60_000)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z');
}
