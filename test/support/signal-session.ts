/**
 * What the release-signal tests share: scripted providers started by a test and stopped after it,
 * then the check that the session left nothing behind (no timer, no socket, no rejection nobody
 * handled: the CLI would not exit, or would crash later); a target for a provider; and the signal
 * sent with the tests' CA.
 *
 *   const { provider, target, signal } = signalSessions({ credentials, account });
 *
 * Call it at the top of a test file: it registers the file's beforeEach and afterEach.
 */
import { afterEach, beforeEach, expect } from 'vitest';
import { parseTarget, type Target } from '../../lambda/core/config';
import type { Credentials, Transcript } from '../../lambda/core/ports';
import { releaseSignal } from '../../lambda/core/signal/session';
import {
  ScriptedProvider,
  type ScriptedProviderOptions,
  testCa,
} from '../../peers/scripted-provider';
import { type Leftovers, watchLeftovers } from './no-leftovers';

export interface SignalSessionsOptions {
  readonly credentials: Credentials;
  /** The provider's one account (AUTH); none: the provider asks for no AUTH unless told. */
  readonly account?: { readonly username: string; readonly password: string };
  /** Fields every target of the file has unless the test says otherwise. */
  readonly targetFields?: Record<string, unknown>;
}

export function signalSessions(options: SignalSessionsOptions) {
  const stops: (() => Promise<void>)[] = [];
  let leftovers: Leftovers;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    leftovers = watchLeftovers();
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled.splice(0)).toEqual([]);
    expect(await leftovers.settle()).toEqual([]);
  });

  return {
    /** Stop this peer (one the test started itself) after the test, before the leftover check. */
    stopAfterTest(stop: () => Promise<void>): void {
      stops.push(stop);
    },

    /** A scripted provider on loopback, with the file's account unless `o` says otherwise. */
    async provider(o: ScriptedProviderOptions = {}): Promise<ScriptedProvider> {
      const p = await new ScriptedProvider({
        ...(options.account ? { account: options.account } : {}),
        ...o,
      }).start();
      stops.push(() => p.stop());
      return p;
    },

    /** A target for a peer (a provider, or a port on 127.0.0.1), plain TCP unless `fields` say. */
    target(
      peer: number | { port: number; host?: string },
      fields: Record<string, unknown> = {},
    ): Target {
      const { port, host } = typeof peer === 'number' ? { port: peer, host: undefined } : peer;
      return parseTarget(
        {
          name: 't',
          host: host ?? '127.0.0.1',
          port,
          tls: 'none',
          ...options.targetFields,
          ...fields,
        },
        'test',
      );
    },

    /** releaseSignal with the file's credentials, the tests' CA and a hello name. */
    signal(t: Target, extra: { transcript?: Transcript } = {}) {
      return releaseSignal(
        t,
        {},
        {
          credentials: options.credentials,
          tlsCa: testCa,
          helloName: 'mx.customer.test',
          ...extra,
        },
      );
    },
  };
}
