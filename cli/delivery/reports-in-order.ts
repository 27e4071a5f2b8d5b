/**
 * `deliver`'s reports in the order of the messages (oldest first), whatever order their marks
 * complete in: deliver-run.ts sends the next messages while earlier marks (renames, deletes)
 * complete in the background.
 */

/** Marks (renames, deletes) completing in the background while the next messages go out. */
export const MAX_MARKS_IN_FLIGHT = 16;

/**
 * Reports in the order of the messages, each once its mark is done. Marks complete in the
 * background, at most MAX_MARKS_IN_FLIGHT at once, while the next messages go out.
 */
export class ReportsInOrder<R> {
  readonly all: R[] = [];
  private reported: Promise<void> = Promise.resolve();
  private readonly marks: Promise<void>[] = [];

  constructor(
    private readonly onReport?: (report: R) => void,
    private readonly maxInFlight = MAX_MARKS_IN_FLIGHT,
  ) {}

  /** Report once `marking` and every report before it are done; resolves then, never rejects. */
  add(marking: Promise<R>): Promise<void> {
    this.reported = this.reported
      .then(() => marking)
      .then((r: R) => {
        this.all.push(r);
        this.onReport?.(r);
      });
    const settled = this.reported.catch(() => undefined);
    this.marks.push(settled);
    return settled;
  }

  /** Leave `marking` to complete in the background; wait only while too many are in flight. */
  async inBackground(marking: Promise<R>): Promise<void> {
    void this.add(marking);
    while (this.marks.length > this.maxInFlight) await this.marks.shift();
  }

  /** Every mark done and reported. */
  async settled(): Promise<void> {
    await Promise.all(this.marks);
    await this.reported.catch(() => undefined);
  }
}
