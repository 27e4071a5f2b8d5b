/**
 * The in-process ODMR provider after the turn (RFC 2645 section 4): the SMTP client delivering
 * its queue to the customer, as a real MTA does. A message leaves the queue only on the
 * customer's 250 (delivered) or a 5xx (bounced); after a 4xx, a cut, or a 421 it stays for the
 * next connection; recipients refused with 452 are queued again as a new message (RFC 5321
 * 4.5.3.1.10). Faults are injected as the options ask (AtrnFaults).
 */
import type { Socket } from 'node:net';
import type { AtrnProviderOptions, HeldQueue, Queued } from './atrn-provider-types';
import { type Lines, stuff, writeSlowly } from './smtp-lines';

/** After the turn: we are the client (RFC 2645 section 4). */
export async function deliverHeld(
  held: HeldQueue,
  o: AtrnProviderOptions,
  socket: Socket,
  wire: Lines,
): Promise<void> {
  // Recipients put off (4xx) wait for a later session, however this one ends.
  const later: Queued[] = [];
  try {
    await deliverQueue(held, o, socket, wire, later);
  } finally {
    held.queue.push(...later);
  }
}

async function deliverQueue(
  held: HeldQueue,
  o: AtrnProviderOptions,
  socket: Socket,
  wire: Lines,
  later: Queued[],
): Promise<void> {
  const faults = o.faults ?? {};
  const wait = o.replyTimeoutMs ?? 30_000;
  const reply = async (): Promise<string | null> => {
    const lines: string[] = [];
    for (;;) {
      const line = await wire.next(wait);
      if (line === null) return null;
      lines.push(line);
      held.customerReplies.push(line);
      if (/^\d{3}(?: |$)/.test(line)) return lines.join('\n');
    }
  };
  const greeting = await reply();
  if (!greeting?.startsWith('220')) return void socket.destroy();
  if (faults.silentAfterGreeting) return;
  if (faults.endlessLineBytes) {
    await writeSlowly(socket, Buffer.alloc(faults.endlessLineBytes, 'X'), 64 * 1024);
    // Whatever the customer answered meanwhile is still worth recording.
    while ((await reply()) !== null);
    return;
  }
  socket.write('EHLO provider.test\r\n');
  const ehlo = await reply();
  if (!ehlo?.startsWith('250')) return void socket.destroy();
  const pipelining = o.pipelining === true && /\bPIPELINING\b/.test(ehlo);
  const sizeAdvertised = /\bSIZE\b/.test(ehlo);
  for (let i = 0; i < (faults.garbageCommands ?? 0); i++) {
    socket.write('XYZZY\r\n');
    const r = await reply();
    if (r === null || r.startsWith('421')) {
      socket.end();
      return undefined;
    }
  }

  let attempt = 0;
  while (held.queue.length) {
    if (attempt > 0 && o.pauseBeforeMessageMs)
      await new Promise((r) => setTimeout(r, o.pauseBeforeMessageMs));
    const item = held.queue[0]!;
    const { message } = item;
    const stuffed = message.wire ?? stuff(message.text);
    const size =
      (o.declareSize && sizeAdvertised ? ` SIZE=${message.text.length}` : '') +
      (message.body ? ` BODY=${message.body}` : '');
    const rcpts = message.to.map((to) => `RCPT TO:<${to}>\r\n`);
    const accepted: string[] = [];
    let deferred: string[] = [];
    /** A 452: the rest of the recipients wait for another transaction. */
    let tooMany = false;
    const finish = (replyText: string | null, acknowledged: boolean, keep: boolean) => {
      held.attempts.push({
        number: item.number,
        reply: replyText,
        acknowledged,
        recipients: accepted,
      });
      held.queue.shift();
      if (acknowledged && deferred.length && tooMany) {
        held.queue.unshift({ number: item.number, message: { ...message, to: deferred } });
      } else if (acknowledged && deferred.length) {
        // Put off (4xx) for these recipients: tried again in a later session, not this one.
        later.push({ number: item.number, message: { ...message, to: deferred } });
      } else if (keep) {
        // Put off (4xx): tried again at the next connection, as a real MTA defers it, not
        // again and again in this one.
        later.push(item);
      } else if (!acknowledged) {
        held.bounced.push(item);
      }
    };

    if (pipelining) socket.write(`MAIL FROM:<${message.from}>${size}\r\n${rcpts.join('')}DATA\r\n`);
    else socket.write(`MAIL FROM:<${message.from}>${size}\r\n`);
    const mail = await reply();
    if (mail === null) return lost(held, item, mail);
    if (!mail.startsWith('250')) {
      if (pipelining) {
        for (let i = 0; i <= message.to.length; i++)
          if ((await reply()) === null) return lost(held, item, mail);
      }
      finish(mail, false, mail.startsWith('4'));
      if (mail.startsWith('421')) return void socket.end();
      continue;
    }
    for (const [i, to] of message.to.entries()) {
      if (!pipelining) socket.write(rcpts[i]!);
      const r = await reply();
      if (r === null) return lost(held, item, r);
      if (r.startsWith('250')) accepted.push(to);
      else if (r.startsWith('452') && !faults.ignore452) {
        deferred = message.to.slice(i).filter((t) => !accepted.includes(t));
        tooMany = true;
      } else if (r.startsWith('4') && !r.startsWith('421')) {
        // Any other 4xx: this recipient stays queued, as a real MTA keeps it (RFC 5321 4.2.1).
        deferred.push(to);
      }
      if (r.startsWith('421')) {
        finish(r, false, true);
        return void socket.end();
      }
      if (tooMany && !pipelining) break;
    }
    if (pipelining && tooMany) deferred = message.to.filter((t) => !accepted.includes(t));
    if (!pipelining) {
      if (!accepted.length) {
        socket.write('RSET\r\n');
        await reply();
        // Every recipient refused: 4xx keeps the message, 5xx bounces it.
        finish('no recipient accepted', false, deferred.length > 0);
        continue;
      }
      socket.write('DATA\r\n');
    }
    const go = await reply();
    if (go === null) return lost(held, item, go);
    if (!go.startsWith('354')) {
      finish(go, false, !go.startsWith('5'));
      if (go.startsWith('421')) return void socket.end();
      continue;
    }

    const cut = faults.cutInData?.message === attempt ? faults.cutInData : undefined;
    const silence = faults.silenceInData?.message === attempt ? faults.silenceInData : undefined;
    const stopAt = cut?.afterBytes ?? silence?.afterBytes;
    attempt++;
    if (faults.endlessDataBytes) {
      await writeSlowly(
        socket,
        Buffer.alloc(faults.endlessDataBytes, 'y'),
        o.chunkBytes ?? 64 * 1024,
      );
      return lost(held, item, null);
    }
    if (stopAt !== undefined) {
      await writeSlowly(socket, stuffed.subarray(0, stopAt), o.chunkBytes ?? 64 * 1024);
      if (cut) {
        // Let the bytes reach the customer before the connection goes.
        await new Promise((r) => setTimeout(r, 20));
        if (cut.reset) socket.resetAndDestroy();
        else socket.destroy();
      } else {
        o.onFault?.('silent');
        // Silent, but still listening: the customer's 421 (a timeout, a deadline, a stop).
        while ((await reply()) !== null);
      }
      return lost(held, item, null);
    }
    if (faults.quitWithLastDot && held.queue.length === 1) {
      const all = Buffer.concat([stuffed, Buffer.from('QUIT\r\n')]);
      if (!(await writeSlowly(socket, all, o.chunkBytes ?? 64 * 1024)))
        return lost(held, item, null);
      socket.end();
      const end = await reply();
      if (end === null) return lost(held, item, end);
      finish(end, end.startsWith('250'), end.startsWith('4'));
      await reply();
      return;
    }
    const sent = await writeSlowly(socket, stuffed, o.chunkBytes ?? 64 * 1024);
    if (!sent) return lost(held, item, null);
    if (faults.strayEmptyLine) socket.write('\r\n');
    const end = await reply();
    if (end === null) return lost(held, item, end);
    finish(end, end.startsWith('250'), end.startsWith('4'));
    if (end.startsWith('421')) return void socket.end();
  }
  socket.write('QUIT\r\n');
  await reply();
  socket.end();
}

/** The connection went with a message in flight: it stays queued. */
function lost(held: HeldQueue, item: Queued, replyText: string | null): void {
  held.attempts.push({
    number: item.number,
    reply: replyText,
    acknowledged: false,
    recipients: [],
  });
}
