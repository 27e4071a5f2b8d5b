/**
 * How far apart the cycles of a schedule are: the shortest and the longest time between two
 * starts. Several deployment rules depend on them and must hold for a `cron(...)` as well as a
 * `rate(...)`:
 *
 * - a cycle must end before the next one starts (the function timeout is at most the shortest
 *   interval), so that two sessions to one provider never overlap;
 * - an invocation that Lambda or Scheduler has held back for longer than the shortest interval is
 *   dropped, not run late into the next cycle;
 * - the no-cycle alarm fires after twice the longest interval without an invocation, and the
 *   stale bound must be longer than the longest interval.
 *
 * Expressions are EventBridge Scheduler's: `rate(value unit)` and six-field
 * `cron(minutes hours day-of-month month day-of-week year)` with `, - * / ? L W #`
 * (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html). A cron schedule
 * is evaluated in its time zone, daylight saving included: its start times are enumerated over
 * four years from the start of the current year, or of the first year its year field allows (a
 * leap year and every weekday of every month included), a local time that does not exist (the hour skipped in spring) does not fire and a
 * repeated one (autumn) fires once, at its first occurrence.
 */

export interface ScheduleIntervals {
  /** The shortest time between two starts, in seconds. */
  readonly shortestSeconds: number;
  /** The longest time between two starts, in seconds. */
  readonly longestSeconds: number;
}

/** A schedule expression that cannot be read, or that never fires twice. */
export class ScheduleExpressionError extends Error {
  override readonly name = 'ScheduleExpressionError';
}

const UNIT_SECONDS = { minute: 60, hour: 3600, day: 86_400 } as const;
/** How many years of start times a cron schedule is enumerated over. */
const CRON_YEARS = 4;

/**
 * The intervals of `expression` in `timeZone` (an IANA name).
 *
 * @param fromYear first year of a cron schedule's enumeration (default: the current UTC year)
 * @throws ScheduleExpressionError for anything but a recurring rate or cron schedule
 */
export function scheduleIntervals(
  expression: string,
  timeZone = 'UTC',
  fromYear = new Date().getUTCFullYear(),
): ScheduleIntervals {
  const rate = /^rate\((\d+) (minute|hour|day)s?\)$/.exec(expression);
  if (rate) {
    const seconds = Number(rate[1]) * UNIT_SECONDS[rate[2] as keyof typeof UNIT_SECONDS];
    if (seconds < 60)
      throw new ScheduleExpressionError(`${expression}: the rate must be at least 1`);
    return { shortestSeconds: seconds, longestSeconds: seconds };
  }
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (!cron) {
    throw new ScheduleExpressionError(
      `${expression}: a recurring schedule is rate(...) or cron(...), e.g. rate(15 minutes) or cron(0 6 * * ? *)`,
    );
  }
  return cronIntervals(expression, parseCron(expression, cron[1]!), timeZone, fromYear);
}

/** The default stale bound: a day, or two and a half of the longest intervals, in whole hours. */
export function defaultStaleAfterHours(intervals: ScheduleIntervals): number {
  return Math.max(24, Math.ceil((2.5 * intervals.longestSeconds) / 3600));
}

/** "15 minutes", "1 day 6 hours": an interval as a person says it. */
export function describeSeconds(seconds: number): string {
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [
    ['day', 86_400],
    ['hour', 3600],
    ['minute', 60],
    ['second', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n) parts.push(`${n} ${unit}${n === 1 ? '' : 's'}`);
  }
  return parts.join(' ') || '0 seconds';
}

interface CronFields {
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  /** Whether a day (year, month 1-12, day 1-31) is a start day. */
  readonly day: (year: number, month: number, day: number) => boolean;
  readonly months: ReadonlySet<number>;
  readonly years: (year: number) => boolean;
  /** The first year from `year` on in which the schedule may fire; undefined: none. */
  readonly firstYearFrom: (year: number) => number | undefined;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function parseCron(expression: string, body: string): CronFields {
  const fail = (why: string): never => {
    throw new ScheduleExpressionError(`${expression}: ${why}`);
  };
  const fields = body.trim().split(/\s+/);
  if (fields.length !== 6)
    fail('a cron expression has six fields: minutes hours day-of-month month day-of-week year');
  const [min, hour, dom, month, dow, year] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if ((dom === '?') === (dow === '?'))
    fail('exactly one of day-of-month and day-of-week must be "?"');

  const minutes = [...values(min, 0, 59, [], 'minutes', fail)].sort((a, b) => a - b);
  const hours = [...values(hour, 0, 23, [], 'hours', fail)].sort((a, b) => a - b);
  const months = values(month, 1, 12, MONTHS, 'month', fail);
  const yearSet = year === '*' ? undefined : values(year, 1970, 2199, [], 'year', fail);
  const years = (y: number) => yearSet === undefined || yearSet.has(y);
  const firstYearFrom = (y: number) =>
    yearSet === undefined ? y : [...yearSet].sort((a, b) => a - b).find((v) => v >= y);
  const day = dom === '?' ? weekdayRule(dow, fail) : monthDayRule(dom, fail);
  return { minutes, hours, day, months, years, firstYearFrom };
}

/** The values of a plain field: `*`, `a`, `a-b`, `a/n`, `a-b/n`, `*\/n`, comma-separated. */
function values(
  field: string,
  low: number,
  high: number,
  names: readonly string[],
  what: string,
  fail: (why: string) => never,
): Set<number> {
  const out = new Set<number>();
  const number = (text: string): number => {
    const named = names.indexOf(text.toUpperCase());
    const n = named >= 0 ? named + low : /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!(n >= low && n <= high)) fail(`${what}: ${JSON.stringify(text)} is not ${low} to ${high}`);
    return n;
  };
  for (const part of field.split(',')) {
    const m = /^(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:\/(\d+))?$/.exec(part);
    if (!m) fail(`${what}: cannot read ${JSON.stringify(part)}`);
    const [, from, to, step] = m!;
    const start = from === '*' ? low : number(from!);
    const end = to !== undefined ? number(to) : from === '*' || step !== undefined ? high : start;
    const by = step === undefined ? 1 : Number(step);
    if (by < 1) fail(`${what}: the step of ${JSON.stringify(part)} must be at least 1`);
    if (end < start) fail(`${what}: ${JSON.stringify(part)} runs backwards`);
    for (let n = start; n <= end; n += by) out.add(n);
  }
  return out;
}

const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
/** 1 = Sunday ... 7 = Saturday, as the cron day-of-week field counts. */
const weekday = (year: number, month: number, day: number) =>
  new Date(Date.UTC(year, month - 1, day)).getUTCDay() + 1;

/** Day-of-month: plain values, `L` (last day), `LW` (last weekday), `nW` (weekday nearest n). */
function monthDayRule(
  field: string,
  fail: (why: string) => never,
): (year: number, month: number, day: number) => boolean {
  if (field === '*') return () => true;
  const rules = field.split(',').map((part): ((y: number, m: number, d: number) => boolean) => {
    if (part === 'L') return (y, m, d) => d === daysIn(y, m);
    if (part === 'LW') return (y, m, d) => d === nearestWeekday(y, m, daysIn(y, m));
    const w = /^(\d+)W$/.exec(part);
    if (w) {
      const n = Number(w[1]);
      if (n < 1 || n > 31) fail(`day-of-month: ${JSON.stringify(part)} is not 1W to 31W`);
      return (y, m, d) => n <= daysIn(y, m) && d === nearestWeekday(y, m, n);
    }
    const set = values(part, 1, 31, [], 'day-of-month', fail);
    return (_y, _m, d) => set.has(d);
  });
  return (y, m, d) => rules.some((rule) => rule(y, m, d));
}

/** The weekday nearest to day `n` within its month (Saturday: the Friday before, Sunday: the Monday after). */
function nearestWeekday(year: number, month: number, n: number): number {
  const wd = weekday(year, month, n);
  if (wd === 7) return n === 1 ? 3 : n - 1;
  if (wd === 1) return n === daysIn(year, month) ? n - 2 : n + 1;
  return n;
}

/** Day-of-week: plain values and names, `nL` (last such weekday), `n#k` (the k-th). */
function weekdayRule(
  field: string,
  fail: (why: string) => never,
): (year: number, month: number, day: number) => boolean {
  const weekdayNumber = (text: string): number => {
    const named = WEEKDAYS.indexOf(text.toUpperCase());
    const n = named >= 0 ? named + 1 : /^\d$/.test(text) ? Number(text) : Number.NaN;
    if (!(n >= 1 && n <= 7))
      fail(`day-of-week: ${JSON.stringify(text)} is not 1 to 7 or SUN to SAT`);
    return n;
  };
  if (field === '*') return () => true;
  const rules = field.split(',').map((part): ((y: number, m: number, d: number) => boolean) => {
    if (part === 'L') return (y, m, d) => weekday(y, m, d) === 7;
    const last = /^([A-Za-z0-9]+)L$/.exec(part);
    if (last) {
      const wd = weekdayNumber(last[1]!);
      return (y, m, d) => weekday(y, m, d) === wd && d + 7 > daysIn(y, m);
    }
    const nth = /^([A-Za-z0-9]+)#([1-5])$/.exec(part);
    if (nth) {
      const wd = weekdayNumber(nth[1]!);
      const k = Number(nth[2]);
      return (y, m, d) => weekday(y, m, d) === wd && Math.ceil(d / 7) === k;
    }
    const set = values(part, 1, 7, WEEKDAYS, 'day-of-week', fail);
    return (y, m, d) => set.has(weekday(y, m, d));
  });
  return (y, m, d) => rules.some((rule) => rule(y, m, d));
}

function cronIntervals(
  expression: string,
  cron: CronFields,
  timeZone: string,
  fromYear: number,
): ScheduleIntervals {
  const offsetOf = zoneOffset(timeZone);
  const first = cron.firstYearFrom(fromYear);
  if (first === undefined)
    throw new ScheduleExpressionError(`${expression}: never fires from ${fromYear} on`);
  fromYear = first;
  let previous: number | undefined;
  let shortest = Number.POSITIVE_INFINITY;
  let longest = 0;
  let starts = 0;
  for (let year = fromYear; year < fromYear + CRON_YEARS; year++) {
    if (!cron.years(year)) continue;
    for (let month = 1; month <= 12; month++) {
      if (!cron.months.has(month)) continue;
      for (let day = 1; day <= daysIn(year, month); day++) {
        if (!cron.day(year, month, day)) continue;
        const midnight = Date.UTC(year, month - 1, day);
        // One offset for the whole day, unless the zone changes its offset that day.
        const early = offsetOf(midnight - 14 * 3_600_000);
        const late = offsetOf(midnight + 38 * 3_600_000);
        for (const hour of cron.hours) {
          for (const minute of cron.minutes) {
            const local = midnight + (hour * 60 + minute) * 60_000;
            const at = early === late ? local - early : toUtc(local, offsetOf);
            if (at === undefined || (previous !== undefined && at <= previous)) continue;
            if (previous !== undefined) {
              const gap = (at - previous) / 1000;
              shortest = Math.min(shortest, gap);
              longest = Math.max(longest, gap);
            }
            previous = at;
            starts++;
          }
        }
      }
    }
  }
  if (starts < 2) {
    throw new ScheduleExpressionError(
      `${expression}: fires ${starts === 0 ? 'never' : 'once'} between ${fromYear} and ${fromYear + CRON_YEARS - 1}: a release signal recurs`,
    );
  }
  return { shortestSeconds: shortest, longestSeconds: longest };
}

/** The UTC instant of a local wall-clock time; undefined when the zone skips it. */
function toUtc(local: number, offsetOf: (utc: number) => number): number | undefined {
  // Try the offsets in force just before and just after; the first that maps back is the first
  // occurrence of a repeated local time.
  for (const offset of [offsetOf(local - 86_400_000), offsetOf(local + 86_400_000)]) {
    const at = local - offset;
    if (at + offsetOf(at) === local) return at;
  }
  return undefined;
}

/** The zone's offset from UTC (milliseconds, local = utc + offset) at an instant. */
function zoneOffset(timeZone: string): (utc: number) => number {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
  });
  return (utc) => {
    const parts = Object.fromEntries(
      format.formatToParts(new Date(utc)).map((p) => [p.type, Number(p.value)]),
    );
    const local = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!);
    return local - Math.floor(utc / 60_000) * 60_000;
  };
}
