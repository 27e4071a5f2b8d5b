/** The optional `settings.mail` block: limits of the reversed session and the relay. */
import { describe, expect, it } from 'vitest';
import { parseConfigDocument } from '../../lambda/core/config';

const doc = (mail: unknown) => ({ settings: { mail }, targets: [] });

describe('settings.mail', () => {
  it("is optional, and fills the relay's defaults when given", () => {
    expect(parseConfigDocument({ targets: [] }, 'f.json').settings.mail).toBeUndefined();
    const parsed = parseConfigDocument(
      doc({ maxMessageBytes: 52428800, maxRecipients: 1000, relay: { host: 'mx.internal.test' } }),
      'f.json',
    );
    expect(parsed.settings.mail).toEqual({
      maxMessageBytes: 52428800,
      maxRecipients: 1000,
      relay: { host: 'mx.internal.test', port: 25, tls: 'opportunistic' },
    });
  });

  it.each([
    [{ maxRecipients: 10 }, 'settings.mail.maxRecipients: must be at least 100'],
    [{ maxMessageBytes: 12.5 }, 'settings.mail.maxMessageBytes: must be an integer'],
    [{ relay: { host: 'bad host' } }, 'settings.mail.relay.host: must be a host name'],
    [
      { relay: { host: 'mx.test', tls: 'always' } },
      'settings.mail.relay.tls: must be none, opportunistic, required or implicit',
    ],
    [{ maxSize: 1 }, 'settings.mail.maxSize: is not a known field'],
  ])('names the field at fault: %j', (mail, message) => {
    expect(() => parseConfigDocument(doc(mail), 'f.json')).toThrow(`f.json: ${message}`);
  });
});
