/**
 * The delivery status notification as a mail reader and a bounce processor see it: a
 * multipart/report whose status part names each recipient with its status and the server's reply,
 * whose last part is the original header section, in canonical text nothing can inject into.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  deliveryStatusNotification,
  type DsnRequest,
} from '../../../lambda/core/dsn/delivery-status';
import { headerSection } from '../../../lambda/core/dsn/header-section';
import { enhancedStatus, expiredStatus, refusedStatus } from '../../../lambda/core/dsn/status-code';

const original = Buffer.from(
  'Received: from provider.test by us.test; Mon, 07 Dec 2026 10:00:00 +0000\r\n' +
    'From: Alice <alice@sender.test>\r\n' +
    'To: bob@customer.test, carol@customer.test\r\n' +
    'Subject: quarterly figures\r\n' +
    'Message-ID: <m1@sender.test>\r\n' +
    '\r\n' +
    'the body, which the notification does not carry\r\n',
);

async function request(over: Partial<DsnRequest> = {}): Promise<DsnRequest> {
  return {
    reportingMta: 'mx.dequeue.test',
    reversePath: 'alice@sender.test',
    messageId: '20261207T100000000Z-abc.dsn1@mx.dequeue.test',
    arrivalDate: new Date('2026-12-07T10:00:00Z'),
    receivedFromMta: 'provider.test',
    remoteMta: 'mail.customer.test',
    date: new Date('2026-12-07T10:05:00Z'),
    recipients: [
      {
        address: 'bob@customer.test',
        status: '5.1.1',
        reason: 'refused',
        diagnostic:
          '550 5.1.1 <bob@customer.test>: Recipient address rejected: User unknown in local recipient table',
      },
    ],
    headers: await headerSection([original]),
    ...over,
  };
}

/** The parts between the boundaries, each as [header lines, body]. */
function parts(text: string): { top: string; parts: { head: string; body: string }[] } {
  const [top, ...rest] = text.split('\r\n\r\n');
  const boundary = /boundary="([^"]+)"/.exec(top!)![1]!;
  const body = rest.join('\r\n\r\n');
  expect(body.endsWith(`\r\n--${boundary}--\r\n`)).toBe(true);
  const pieces = body.split(`\r\n--${boundary}`).slice(1, -1);
  return {
    top: top!,
    parts: pieces.map((p) => {
      const [head, ...b] = p.replace(/^\r\n/, '').split('\r\n\r\n');
      return { head: head!, body: b.join('\r\n\r\n') };
    }),
  };
}

describe('deliveryStatusNotification', () => {
  it('is a multipart/report from the mailer daemon to the reverse-path, with three parts', async () => {
    const { text } = deliveryStatusNotification(await request());
    const s = text.toString('latin1');
    const { top, parts: p } = parts(s);
    expect(top).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@mx\.dequeue\.test>\r\n/m);
    expect(top).toMatch(/^To: <alice@sender\.test>$/m);
    expect(top).toMatch(/^Auto-Submitted: auto-replied$/m);
    expect(top).toMatch(/^Message-ID: <20261207T100000000Z-abc\.dsn1@mx\.dequeue\.test>$/m);
    expect(top).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(p.map((x) => x.head)).toEqual([
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Type: message/delivery-status',
      'Content-Type: text/rfc822-headers',
    ]);
    const status = p[1]!.body.replace(/\r\n /g, ' ');
    expect(status).toContain('Reporting-MTA: dns; mx.dequeue.test\r\n');
    expect(status).toContain('Arrival-Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n');
    expect(status).toContain(
      '\r\n\r\nFinal-Recipient: rfc822; bob@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n',
    );
    expect(status).toContain(
      'Diagnostic-Code: smtp; 550 5.1.1 <bob@customer.test>: Recipient address rejected: User unknown in local recipient table\r\n',
    );
    expect(p[0]!.body).toContain('<bob@customer.test>: 550 5.1.1');
    // RET=HDRS: the headers, not the body.
    expect(p[2]!.body).toContain('Subject: quarterly figures\r\nMessage-ID: <m1@sender.test>\r\n');
    expect(s).not.toContain('the body, which');
  });

  it('every line ends in CRLF and none is longer than 998 characters', async () => {
    const long = 'x'.repeat(900);
    const { text } = deliveryStatusNotification(
      await request({
        recipients: [
          {
            address: 'b@c.test',
            status: '5.0.0',
            reason: 'refused',
            diagnostic: `550 ${long} ${long}`,
          },
        ],
      }),
    );
    const s = text.toString('latin1');
    expect(s.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    for (const l of s.split('\r\n')) expect(l.length).toBeLessThanOrEqual(998);
  });

  it('a reply with line ends or controls cannot add a header field', async () => {
    const { text } = deliveryStatusNotification(
      await request({
        recipients: [
          {
            address: 'b@c.test',
            status: '5.0.0',
            reason: 'refused',
            diagnostic: '550 no\r\nBcc: evil@x.test\x00',
          },
        ],
      }),
    );
    expect(text.toString('latin1')).not.toMatch(/^Bcc:/m);
  });

  it('names an expired recipient with how long we tried, and the last reply', async () => {
    const { text } = deliveryStatusNotification(
      await request({
        giveUpAfter: '5 days',
        recipients: [
          {
            address: 'c@customer.test',
            status: '4.2.2',
            reason: 'expired',
            diagnostic: '452 4.2.2 Mailbox full',
          },
          { address: 'd@customer.test', status: '4.4.7', reason: 'expired', diagnostic: null },
        ],
      }),
    );
    const s = text.toString('latin1');
    expect(s).toContain('Not delivered within 5 days');
    expect(s).toContain(
      'Final-Recipient: rfc822; c@customer.test\r\nAction: failed\r\nStatus: 4.2.2',
    );
    expect(s).toContain(
      'Final-Recipient: rfc822; d@customer.test\r\nAction: failed\r\nStatus: 4.4.7',
    );
  });

  it('refuses the null reverse-path: no bounce of a bounce', async () => {
    const r = await request({ reversePath: '' });
    expect(() => deliveryStatusNotification(r)).toThrow(/null reverse-path/);
  });

  it('8-bit original headers go quoted-printable: the DSN is 7-bit, for any server', async () => {
    const raw = `Subject: caf\xc3\xa9 = ${'x'.repeat(100)}\r\nX-Tail: a \r\n\r\nbody`;
    const headers = await headerSection([Buffer.from(raw, 'latin1')]);
    const { text } = deliveryStatusNotification(await request({ headers }));
    expect(text.every((b) => b < 0x80)).toBe(true);
    const s = text.toString('latin1');
    expect(s).toContain(
      'Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: quoted-printable\r\n',
    );
    expect(s).toContain('Subject: caf=C3=A9 =3D x');
    expect(s).toContain('X-Tail: a=20\r\n');
    for (const l of s.split('\r\n')) expect(l.length).toBeLessThanOrEqual(998);
    // Decoded, the part is the header section again.
    const part = s.split('quoted-printable\r\n\r\n')[1]!.split('\r\n--')[0]!;
    const decoded = Buffer.from(
      part
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(Number.parseInt(h, 16))),
      'latin1',
    );
    expect(decoded.toString('latin1')).toBe(headers.text.toString('latin1'));
  });
});

describe('headerSection', () => {
  it('stops at the empty line, makes bare LF into CRLF, across chunk edges', async () => {
    const text = 'A: 1\nB: two\r\n  folded\n\nbody\n';
    for (let cut = 1; cut < text.length; cut++) {
      const h = await headerSection([
        Buffer.from(text.slice(0, cut)),
        Buffer.from(text.slice(cut)),
      ]);
      expect(h.text.toString()).toBe('A: 1\r\nB: two\r\n  folded\r\n');
      expect(h.cut).toBe(false);
    }
  });

  it('cuts an oversized header section at a line end and says so', async () => {
    const big = `${'X-Pad: y\r\n'.repeat(1000)}\r\nbody`;
    const h = await headerSection([Buffer.from(big)], 1000);
    expect(h.cut).toBe(true);
    expect(h.text.length).toBeLessThanOrEqual(1000);
    expect(h.text.toString().endsWith('X-Pad: y\r\n')).toBe(true);
  });

  it('any split of any text gives the same section (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), fc.nat(200), async (s, at) => {
        const whole = await headerSection([Buffer.from(s)]);
        const b = Buffer.from(s);
        const split = await headerSection([b.subarray(0, at), b.subarray(at)]);
        expect(split).toEqual(whole);
        expect(whole.text.toString('latin1')).not.toMatch(/\r\n\r\n|(^|[^\r])\n/);
      }),
      { seed: 3464, numRuns: Number(process.env.DEQUEUE_FUZZ_RUNS ?? 200) },
    );
  });
});

describe('status codes (RFC 3463)', () => {
  it('takes the server enhanced code only when its class matches the reply', () => {
    expect(enhancedStatus(550, '5.1.1 <b@c>: User unknown')).toBe('5.1.1');
    expect(enhancedStatus(550, '4.1.1 odd')).toBeNull();
    expect(refusedStatus(550, 'User unknown')).toBe('5.0.0');
    expect(refusedStatus(554, '5.7.1 Relay access denied')).toBe('5.7.1');
    expect(expiredStatus(452, '4.2.2 Mailbox full')).toBe('4.2.2');
    expect(expiredStatus(451, 'try later')).toBe('4.4.7');
    expect(expiredStatus(null, null)).toBe('4.4.7');
  });
});
