/**
 * The connector inside a sandbox's network namespace (forwarder.ts starts it there with
 * `nsenter --net`). A socket stays in the namespace it was made in, wherever its descriptor goes:
 * on each request from cairnd this connects to the app on 127.0.0.1:<port> and hands the
 * connected socket over the IPC channel. cairnd then talks to the app itself; nothing here reads
 * or relays a byte, and nothing listens.
 */
import { connect } from "node:net";

const port = Number(process.argv[2]);
const send = process.send?.bind(process);
if (!send || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write("usage: forwarder-child <port>, started with an IPC channel\n");
  process.exit(2);
}

process.on("message", (m: { id?: unknown }) => {
  const id = m?.id;
  if (typeof id !== "number") return;
  const socket = connect({ host: "127.0.0.1", port });
  // Paused before it connects: not even a server's first bytes are read here, they are cairnd's.
  socket.pause();
  socket.once("connect", () => {
    socket.removeAllListeners("error");
    send({ id }, socket);
  });
  socket.once("error", (err: NodeJS.ErrnoException) => {
    socket.destroy();
    send({ id, error: err.code ?? err.message });
  });
});
// cairnd gone (or done with this version): nothing is left to do.
process.on("disconnect", () => process.exit(0));
send({ ready: true });
