// IPv4 and CIDR arithmetic for config validation and for the first service IP. Pure functions.

/** Parses a dotted-quad IPv4 address into a 32-bit unsigned number, or undefined when malformed. */
export function parseIPv4(text: string): number | undefined {
    const parts = text.split(".");
    if (parts.length !== 4) {
        return undefined;
    }
    let value = 0;
    for (const part of parts) {
        if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) {
            return undefined;
        }
        value = value * 256 + Number(part);
    }
    return value;
}

export function formatIPv4(value: number): string {
    return [24, 16, 8, 0].map(shift => Math.floor(value / 2 ** shift) % 256).join(".");
}

export interface Cidr {
    /** First address of the block. */
    base: number;
    prefix: number;
    /** Number of addresses in the block. */
    size: number;
}

/** Parses `a.b.c.d/n`; the address must be the block's first address (10.32.0.0/16, not 10.32.0.1/16). */
export function parseCidr(text: string): Cidr | undefined {
    const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
    if (!match) {
        return undefined;
    }
    const address = parseIPv4(match[1]);
    const prefix = Number(match[2]);
    if (address === undefined || prefix > 32) {
        return undefined;
    }
    const size = 2 ** (32 - prefix);
    if (address % size !== 0) {
        return undefined;
    }
    return { base: address, prefix, size };
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
    return a.base < b.base + b.size && b.base < a.base + a.size;
}

export function cidrContains(block: Cidr, address: number): boolean {
    return address >= block.base && address < block.base + block.size;
}

/** The ClusterIP of the `kubernetes` Service: the first usable address of the service CIDR (10.32.0.1). */
export function firstServiceIP(serviceCidr: string): string {
    const block = parseCidr(serviceCidr);
    if (!block) {
        throw new Error(`not a CIDR block: ${serviceCidr}`);
    }
    return formatIPv4(block.base + 1);
}
