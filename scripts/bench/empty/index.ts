// Intentionally empty: the engine's fixed cost for a Node.js program.
export const nothing = "";
