/**
 * The /etc a sandbox sees: never the host's. cairnd builds one read-only template per start, from
 * files it writes itself (accounts, name service, hosts, resolver) and a short list of host files
 * that are public by nature and that the host's /usr needs to work (the loader's cache, Debian's
 * alternatives symlinks, CA certificates, time zone, protocol and service names, shell profiles).
 * Anything else an operator keeps in /etc (shadow, npmrc, pip.conf, gitconfig, database configs,
 * ssh keys, machine-id, TLS private keys) is simply not there. Each sandbox's /etc is an overlay:
 * this template below, the sandbox's own writable layer above (on its disk).
 */
import { createHash } from "node:crypto";
import { cp, lstat, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Host /etc entries copied into the template: public data the host's programs read. */
const FROM_HOST = [
  "alternatives", "ca-certificates", "ca-certificates.conf", "ssl/certs", "ssl/openssl.cnf", "ld.so.cache",
  "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "mime.types", "protocols", "services", "rpc", "ethertypes",
  "os-release", "debian_version", "profile", "profile.d", "bash.bashrc", "inputrc", "environment", "shells",
  "login.defs", "gai.conf", "host.conf", "magic", "magic.mime", "mailcap", "python3", "perl", "terminfo", "skel",
  "mke2fs.conf", "xattr.conf", "nanorc", "vim", "wgetrc", "e2scrub.conf", "logcheck",
];

/** Accounts every sandbox has: root, a plain user for code that should not run as root, nobody. */
const GENERATED: Record<string, { content: string; mode: number }> = {
  passwd: {
    mode: 0o644,
    content: [
      "root:x:0:0:root:/root:/bin/bash",
      "user:x:1000:1000:user:/home/user:/bin/bash",
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ].join("\n"),
  },
  group: { mode: 0o644, content: ["root:x:0:", "users:x:100:user", "user:x:1000:", "nogroup:x:65534:", ""].join("\n") },
  // No password can log in: '*' never matches a hash.
  shadow: { mode: 0o640, content: ["root:*:19000:0:99999:7:::", "user:*:19000:0:99999:7:::", "nobody:*:19000:0:99999:7:::", ""].join("\n") },
  gshadow: { mode: 0o640, content: ["root:*::", "users:*::user", "user:*::", "nogroup:*::", ""].join("\n") },
  "nsswitch.conf": { mode: 0o644, content: "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n" },
  hosts: { mode: 0o644, content: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" },
  hostname: { mode: 0o644, content: "sandbox\n" },
  "machine-id": { mode: 0o444, content: "" },
};

/**
 * The resolver every sandbox names: cairnd's DNS forwarder on the sandboxes' gateway. A sandbox
 * without a network interface has no route there, so its lookups fail at once.
 */
function resolvConf(nameserver: string): { content: string; mode: number } {
  return { mode: 0o644, content: `# cairn: the sandboxes' DNS forwarder (a sandbox without network has no route to it)\nnameserver ${nameserver}\noptions timeout:2 attempts:2\n` };
}

/**
 * The template for this host's /etc as it is now, built once into `<root>/etc-<fingerprint>`. A
 * template in use is never rewritten (running sandboxes have it as their lower layer): when the
 * host's files or this list change, the fingerprint does, and a new one is built beside it.
 */
export async function etcTemplate(root: string, hostEtc = "/etc", nameserver = "127.0.0.1"): Promise<string> {
  const generated = { ...GENERATED, "resolv.conf": resolvConf(nameserver) };
  const h = createHash("sha256").update(JSON.stringify({ FROM_HOST, generated }));
  for (const entry of FROM_HOST) {
    const st = await lstat(join(hostEtc, entry)).catch(() => undefined);
    h.update(`${entry}:${st ? `${st.mtimeMs}:${st.size}:${st.ino}` : "-"}\n`);
  }
  const dir = join(root, `etc-${h.digest("hex").slice(0, 16)}`);
  if (await lstat(dir).catch(() => undefined)) return dir;
  const tmp = `${dir}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  for (const entry of FROM_HOST) {
    const src = join(hostEtc, entry);
    if (!(await lstat(src).catch(() => undefined))) continue;
    await mkdir(join(tmp, entry, ".."), { recursive: true });
    await cp(src, join(tmp, entry), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: false });
  }
  for (const [name, f] of Object.entries(generated)) await writeFile(join(tmp, name), f.content, { mode: f.mode });
  await rename(tmp, dir);
  return dir;
}

/** The files of one sandbox that name it: written into its own layer, above the template. */
export async function writeSandboxEtc(upperEtc: string, hostname: string): Promise<void> {
  await mkdir(upperEtc, { recursive: true });
  await writeFile(join(upperEtc, "hostname"), `${hostname}\n`);
  await writeFile(join(upperEtc, "hosts"), `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
}
