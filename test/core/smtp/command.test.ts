/** The command grammar we serve after the turn (RFC 5321 4.1), with strings alone. */
import { describe, expect, it } from 'vitest';
import {
  parseMailFrom,
  parseRcptTo,
  printable,
  splitCommand,
} from '../../../lambda/core/smtp/command';
import { receivedHeader } from '../../../lambda/core/odmr/trace-header';

describe('splitCommand', () => {
  it('upper-cases the verb and keeps the arguments as sent', () => {
    expect(splitCommand('mail FROM:<a@b>')).toEqual({ verb: 'MAIL', args: 'FROM:<a@b>' });
    expect(splitCommand('QUIT')).toEqual({ verb: 'QUIT', args: '' });
    expect(splitCommand('')).toEqual({ verb: '', args: '' });
    expect(splitCommand('123 x').verb).toBe('?');
  });
});

describe('MAIL FROM and RCPT TO', () => {
  it('accepts the null reverse-path, a space after the colon, and parameters', () => {
    expect(parseMailFrom('FROM:<>')).toMatchObject({ ok: true, address: '' });
    const r = parseMailFrom('from: <a@b.test> SIZE=1000 BODY=8BITMIME');
    expect(r.ok && r.address).toBe('a@b.test');
    expect(r.ok && [...r.params]).toEqual([
      ['SIZE', '1000'],
      ['BODY', '8BITMIME'],
    ]);
  });

  it('drops a source route (RFC 5321 4.1.1.3) and accepts a quoted local part', () => {
    expect(parseRcptTo('TO:<@relay.test,@hop.test:u@c.test>')).toMatchObject({
      ok: true,
      address: 'u@c.test',
    });
    expect(parseRcptTo('TO:<"a b>c"@c.test>')).toMatchObject({
      ok: true,
      address: '"a b>c"@c.test',
    });
  });

  it('takes <Postmaster> without a domain, but no other bare name', () => {
    expect(parseRcptTo('TO:<Postmaster>')).toMatchObject({ ok: true });
    expect(parseRcptTo('TO:<root>')).toMatchObject({ ok: false, code: 501 });
  });

  it.each([
    ['no brackets', 'FROM:a@b.test'],
    ['the wrong keyword', 'TO:<a@b.test>'],
    ['an unbalanced path', 'FROM:<a@b.test'],
    ['a control character', 'FROM:<a\x01@b.test>'],
    ['an overlong path', `FROM:<${'a'.repeat(250)}@b.test>`],
    ['a malformed parameter', 'FROM:<a@b.test> =x'],
  ])('refuses %s with 501', (_name, args) => {
    expect(parseMailFrom(args)).toMatchObject({ ok: false, code: 501 });
  });

  it('refuses an empty forward-path', () => {
    expect(parseRcptTo('TO:<>')).toMatchObject({ ok: false, code: 501 });
  });
});

describe('trace header', () => {
  it('never carries raw provider input into the header', () => {
    const header = receivedHeader({
      heloName: 'evil\r\nBcc: x@y',
      remoteAddress: '::ffff:192.0.2.7',
      by: 'mx.customer.test',
      esmtp: true,
      tls: true,
      id: 'ID1',
      date: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    }).toString('latin1');
    expect(header).toBe(
      'Received: from unknown ([192.0.2.7])\r\n\tby mx.customer.test (dequeue ODMR) with ESMTPS id ID1;\r\n\tTue, 02 Jan 2024 03:04:05 +0000\r\n',
    );
  });

  it.each([
    ['[IPv6:2001:db8::1]', '[IPv6:2001:db8::1]'],
    ['[ipv6:2001:DB8::7]', '[IPv6:2001:DB8::7]'],
    ['[IPv6:::ffff:192.0.2.1]', '[IPv6:::ffff:192.0.2.1]'],
    ['[192.0.2.1]', '[192.0.2.1]'],
    ['[IPv6:not-an-address]', 'unknown'],
    ['[999.1.1.1]', 'unknown'],
  ])('a provider saying EHLO %s appears as %s in the Received header', (helo, shown) => {
    const header = receivedHeader({
      heloName: helo,
      remoteAddress: '2001:db8::1',
      by: 'mx.customer.test',
      esmtp: true,
      tls: false,
      id: 'ID1',
      date: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    }).toString('latin1');
    expect(header.split('\r\n')[0]).toBe(`Received: from ${shown} ([IPv6:2001:db8::1])`);
  });

  it('printable() makes transcript lines safe and short', () => {
    expect(printable('a\r\nb\x00', 10)).toBe('a??b?');
    expect(printable('x'.repeat(20), 5)).toBe('xxxxx...');
  });
});
