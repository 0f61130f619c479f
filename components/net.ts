// IP addresses and CIDR blocks, IPv4 and IPv6, parsed and compared by ipaddr.js: for config validation and for
// the first service IP. Pure functions.
import * as ipaddr from "ipaddr.js";

export type Address = ipaddr.IPv4 | ipaddr.IPv6;
export type Family = "ipv4" | "ipv6";

/**
 * An IP address as Kubernetes and ip(8) write it: a dotted quad (no leading zeros, no shorthand), or an IPv6
 * address without a zone. Otherwise undefined.
 */
export function parseAddress(text: unknown): Address | undefined {
    if (typeof text !== "string") {
        return undefined;
    }
    if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
        return ipaddr.IPv4.parse(text);
    }
    return ipaddr.IPv6.isValid(text) && !text.includes("%") ? ipaddr.IPv6.parse(text) : undefined;
}

/** Whether two written addresses are the same address (fd00::1 and fd00:0::1 are). */
export function sameAddress(a: Address, b: Address): boolean {
    return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}

export interface Cidr {
    /** As written in the config. */
    text: string;
    /** First address of the block. */
    base: Address;
    prefix: number;
    family: Family;
    /** Bits of the address left to the block's hosts: 32 or 128 minus the prefix. */
    hostBits: number;
}

/** Parses `address/prefix`; the address must be the block's first (10.32.0.0/16, not 10.32.0.1/16). */
export function parseCidr(text: string): Cidr | undefined {
    const match = /^([^/]+)\/(0|[1-9][0-9]{0,2})$/.exec(text);
    const base = match ? parseAddress(match[1]) : undefined;
    if (!match || !base) {
        return undefined;
    }
    const prefix = Number(match[2]);
    const bits = base.kind() === "ipv4" ? 32 : 128;
    if (prefix > bits) {
        return undefined;
    }
    const network = base.kind() === "ipv4" ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
    if (!sameAddress(network, base)) {
        return undefined;
    }
    return { text, base, prefix, family: base.kind(), hostBits: bits - prefix };
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
    return a.family === b.family && (cidrContains(a, b.base) || cidrContains(b, a.base));
}

export function cidrContains(block: Cidr, address: Address): boolean {
    return block.family === address.kind() && address.match(block.base, block.prefix);
}

/**
 * The ClusterIP of the `kubernetes` Service: the first usable address of the service range, of its first
 * (primary) block when the range is dual-stack (10.32.0.1 for 10.32.0.0/16,fd00:10:32::/108).
 */
export function firstServiceIP(serviceCidr: string): string {
    const block = parseCidr(serviceCidr.split(",")[0]);
    if (!block) {
        throw new Error(`not a CIDR block: ${serviceCidr}`);
    }
    const bytes = block.base.toByteArray();
    let i = bytes.length - 1;
    for (; bytes[i] === 255; i--) {
        bytes[i] = 0;
    }
    bytes[i] += 1;
    return ipaddr.fromByteArray(bytes).toString();
}
