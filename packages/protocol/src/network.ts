import { z } from "zod";

/** How a sandbox reaches the network: `none` (loopback only) or `egress`. The operator's default is CAIRN_SANDBOX_NETWORK. */
export const NETWORK_MODES = ["none", "egress"] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

const Rules = z
  .array(z.string().min(1).max(64))
  .max(64)
  .meta({ description: "IPv4 `CIDR`, `CIDR:port` or `CIDR:first-last` (a bare address is a /32); a port applies to TCP and UDP", example: ["10.0.0.5/32:5432"] });

export const SandboxNetworkRequest = z
  .union([
    z.enum(NETWORK_MODES),
    z
      .object({
        egress: z.boolean().meta({ description: "Reach the internet (through the host, NAT). false with an allow list: only what the list names" }),
        allow: Rules.optional().meta({ description: "Destinations reachable although private (10/8, 172.16/12, 192.168/16, 100.64/10), or the only ones when egress is false" }),
        deny: Rules.optional().meta({ description: "Destinations never reachable; deny wins over allow" }),
      })
      .strict(),
  ])
  .meta({
    id: "SandboxNetworkRequest",
    description:
      "`none`: loopback only. `egress`: its own interface, NAT through the host, DNS. Never reachable whatever the lists say: the host's own addresses (cairnd's API included), link-local 169.254.0.0/16 (cloud metadata), loopback, other sandboxes. Default: the server's CAIRN_SANDBOX_NETWORK (none unless the operator says otherwise).",
  });
export type SandboxNetworkRequest = z.infer<typeof SandboxNetworkRequest>;

export const SandboxNetwork = z
  .object({
    egress: z.boolean(),
    allow: z.array(z.string()),
    deny: z.array(z.string()),
    address: z.string().nullable().meta({ description: "Its IPv4 address while it runs with a network interface; null with `none`" }),
  })
  .meta({ id: "SandboxNetwork", description: "What the sandbox may reach; `egress: false` with an empty allow list is `none` (loopback only)" });
export type SandboxNetwork = z.infer<typeof SandboxNetwork>;

export const ExposePortRequest = z
  .object({
    port: z.int().min(1).max(65535).meta({ description: "A TCP port a server in the sandbox listens on (on any address, loopback included)" }),
    public: z.boolean().optional().meta({ description: "Anyone with the URL may use it, without a token; default false" }),
  })
  .strict()
  .meta({ id: "ExposePortRequest" });
export type ExposePortRequest = z.infer<typeof ExposePortRequest>;

export const ExposedPort = z
  .object({
    port: z.int(),
    public: z.boolean(),
    url: z.string().meta({
      description:
        "`http://<port>-<sandbox>.<domain>:<cairnd's port>/`, routed by cairnd (HTTP, streaming, websockets); a private port's URL carries its token (`?cairn_token=`), which the router takes out and keeps in a cookie for that host",
    }),
    token: z.string().nullable().meta({ description: "The private port's token (also accepted as `Authorization: Bearer`, or a project API key); null when public" }),
  })
  .meta({ id: "ExposedPort" });
export type ExposedPort = z.infer<typeof ExposedPort>;
