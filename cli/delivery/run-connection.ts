/** The run's connection to the customer's server (cli/delivery/deliver-run.ts). */
import { asDequeueError, DequeueError } from '../../lambda/core/errors';
import { DeliveryConnection, type DeliveryOptions } from './delivery-client';
import type { Destination } from './destination';
import { type Outgoing, type TransactionResult, unanswered } from './transaction';

/**
 * The run's one connection to the server: opened for the first message, opened again when it
 * broke; once the server cannot be reached, the rest of the run is deferred without trying.
 */
export class RunConnection {
  private connection: DeliveryConnection | null = null;
  private down: DequeueError | null = null;

  constructor(
    private readonly destination: Destination,
    private readonly options: DeliveryOptions,
  ) {}

  async send(m: Outgoing): Promise<TransactionResult> {
    for (let tries = 0; ; tries++) {
      if (!this.down && !this.connection?.usable) {
        await this.connection?.close();
        this.connection = null;
        try {
          this.connection = await DeliveryConnection.open(this.destination, this.options);
        } catch (e) {
          this.down = asDequeueError(e);
        }
      }
      if (this.down || !this.connection) {
        const error =
          this.down ??
          new DequeueError('temporary', `no connection to ${this.destination.display}`);
        return { recipients: unanswered(m.recipients, error.message), error };
      }
      const result = await this.connection.send(m);
      // Not taken up at all (the connection broke first): once more, on a new connection.
      if (!(result.unsent && tries === 0)) return result;
    }
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }
}
