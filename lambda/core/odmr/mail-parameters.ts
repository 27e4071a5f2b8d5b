/**
 * MAIL's parameters after the turn, decided as a value: the ones we advertise in EHLO are taken
 * (SIZE, RFC 1870; BODY, RFC 6152; SMTPUTF8, RFC 6531), anything else is refused rather than
 * silently dropped (RFC 5321 4.1.1.11), and a declared SIZE over our limit is refused before a
 * byte of the message is sent (RFC 1870 section 6.1).
 */
import { printable } from '../smtp/command';

/** What MAIL's parameters say, or the reply that refuses the command. */
export type MailParameters =
  | {
      readonly ok: true;
      readonly body?: '7BIT' | '8BITMIME';
      readonly declaredSize?: number;
      readonly smtputf8?: true;
    }
  | {
      readonly ok: false;
      readonly reply: string;
      /** A refusal for good that the result names (552: the provider bounces the message). */
      readonly refusal?: string;
    };

export function mailParameters(
  params: ReadonlyMap<string, string | true>,
  mailFrom: string,
  esmtp: boolean,
  maxMessageBytes: number,
): MailParameters {
  let body: '7BIT' | '8BITMIME' | undefined;
  let declaredSize: number | undefined;
  let smtputf8: true | undefined;
  for (const [key, value] of params) {
    if (key === 'SIZE' && esmtp && typeof value === 'string' && /^\d{1,20}$/.test(value)) {
      declaredSize = Number(value);
      // RFC 1870 section 6.1: refuse up front what will not fit, before a byte is sent.
      if (declaredSize > maxMessageBytes) {
        return {
          ok: false,
          reply: `552 5.3.4 Message size exceeds fixed maximum message size (${maxMessageBytes})`,
          refusal: `a message of ${declaredSize} bytes from <${printable(mailFrom, 80)}> exceeds maxMessageBytes ${maxMessageBytes}`,
        };
      }
    } else if (
      key === 'BODY' &&
      esmtp &&
      typeof value === 'string' &&
      /^(?:7BIT|8BITMIME)$/i.test(value)
    ) {
      // RFC 6152 section 2 (after RFC 5321 4.1.1.11): the value is case-insensitive.
      body = value.toUpperCase() as '7BIT' | '8BITMIME';
    } else if (key === 'SMTPUTF8' && esmtp && value === true) {
      // RFC 6531 section 3.4: a keyword without a value.
      smtputf8 = true;
    } else {
      // RFC 5321 4.1.1.11: a parameter we did not advertise is refused, not silently dropped.
      return { ok: false, reply: `555 5.5.4 Parameter ${printable(key, 20)} not recognized` };
    }
  }
  return {
    ok: true,
    ...(body ? { body } : {}),
    ...(declaredSize !== undefined ? { declaredSize } : {}),
    ...(smtputf8 ? { smtputf8 } : {}),
  };
}
