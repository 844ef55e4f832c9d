/**
 * The outside world of the network tests, made by the tests themselves: a "host" in a network
 * namespace of its own, reached from the machine through a veth pair and routes to its addresses
 * only, and a DNS server on the machine's loopback. No test traffic leaves the machine. Every
 * name and address is drawn at random, so suites running at once do not meet.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { run } from "../src/host/exec.js";

export interface TestHost {
  /** A public-looking address (198.18.0.0/15, a range no sandbox rule closes by default). */
  publicIp: string;
  /** A private address (10.0.0.0/8): closed to egress sandboxes unless allowed. */
  privateIp: string;
  /** A link-local address, as a cloud's metadata service has (169.254.0.0/16). */
  linkLocalIp: string;
  /** The machine's own address on the link to the test host (a host address, like any other). */
  machineIp: string;
  /** Every address answers HTTP on these ports with `hello <port> <address>`. */
  ports: number[];
  close(): Promise<void>;
}

const ip = (args: string[], input?: string) => run("ip", args, input !== undefined ? { input } : {});

/** A host in its own network namespace, with HTTP servers on `ports` of every address. */
export async function startTestHost(ports: number[]): Promise<TestHost> {
  const r = randomBytes(4);
  const a = r[0]!;
  const b = 2 + (r[1]! % 250);
  const tag = r.toString("hex").slice(0, 6);
  const t: Omit<TestHost, "close"> = {
    publicIp: `198.18.${a}.${b}`,
    privateIp: `10.${r[2]!}.${a}.${b}`,
    linkLocalIp: `169.254.${1 + (r[3]! % 168)}.${b}`,
    machineIp: `198.19.${a}.${b}`,
    ports,
  };
  const ns = spawn("unshare", ["--net", "--", "sleep", "infinity"], { stdio: "ignore" });
  const outside = `ct${tag}h`;
  let server: ChildProcess | undefined;
  const close = async () => {
    server?.kill("SIGKILL");
    ns.kill("SIGKILL");
    await ip(["link", "del", outside]).catch(() => undefined);
  };
  try {
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let i = 0; i < 100 && (await run("readlink", [`/proc/${ns.pid}/ns/net`]).then((o) => o.stdout) === (await run("readlink", ["/proc/self/ns/net"])).stdout); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await ip(["link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", String(ns.pid)]);
    await ip(["-batch", "-"], [`addr add ${t.machineIp}/32 dev ${outside}`, `link set ${outside} up`, ...[t.publicIp, t.privateIp, t.linkLocalIp].map((x) => `route add ${x}/32 dev ${outside}`), ""].join("\n"));
    const inside = (args: string[]) => run("nsenter", [`--net=/proc/${ns.pid}/ns/net`, "--", ...args]);
    await inside(["ip", "link", "set", "lo", "up"]);
    for (const x of [t.publicIp, t.privateIp, t.linkLocalIp]) await inside(["ip", "addr", "add", `${x}/32`, "dev", "eth0"]);
    await inside(["ip", "link", "set", "eth0", "up"]);
    await inside(["ip", "route", "add", `${t.machineIp}/32`, "dev", "eth0"]);
    await inside(["ip", "route", "add", "default", "via", t.machineIp, "dev", "eth0"]);
    const script = `const http=require("http");let n=0;for(const p of ${JSON.stringify(ports)})http.createServer((q,s)=>s.end("hello "+p+" "+q.socket.localAddress)).listen(p,"0.0.0.0",()=>{if(++n===${ports.length})console.log("ready")});`;
    server = spawn("nsenter", [`--net=/proc/${ns.pid}/ns/net`, "--", process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.on("data", (d) => String(d).includes("ready") && resolve());
      server!.on("exit", (code) => reject(new Error(`the test host's servers exited with ${code}`)));
    });
    return { ...t, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A DNS server on 127.0.0.1 answering A queries from `records` (name → IPv4), NXDOMAIN otherwise. */
export async function startDnsServer(records: Record<string, string>): Promise<{ port: number; queries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const s: Socket = createSocket("udp4");
  s.on("message", (msg, from) => {
    if (msg.length < 12) return;
    let off = 12;
    const labels: string[] = [];
    while (off < msg.length && msg[off] !== 0) {
      const len = msg[off]!;
      labels.push(msg.subarray(off + 1, off + 1 + len).toString("latin1"));
      off += len + 1;
    }
    const question = msg.subarray(12, off + 5); // name, its end, type, class
    const name = labels.join(".").toLowerCase();
    const qtype = msg.readUInt16BE(off + 1);
    queries.push(name);
    const address = records[name];
    const answer = address && qtype === 1;
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180 | (address ? 0 : 3), 2); // response, recursion available, NOERROR or NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer ? 1 : 0, 6);
    const rr = answer ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(address.split(".").map(Number))]) : Buffer.alloc(0);
    s.send(Buffer.concat([header, question, rr]), from.port, from.address);
  });
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", resolve));
  return { port: s.address().port, queries, close: () => new Promise<void>((resolve) => s.close(() => resolve())) };
}
