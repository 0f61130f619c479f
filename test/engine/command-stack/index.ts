// One local Command whose scripts leave traces: each appends "<script> <tag>" to a log, create and update write
// the secret content (from stdin) to a file, delete removes it. test/engine/run.sh changes the config between
// `up`s and reads the traces: which script ran, with which inputs, and that the secret stayed out of the state.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config();
const dir = config.require("dir");
const tag = config.require("tag");

const trace = (script: string) => `set -eu; echo "${script} ${tag}" >>'${dir}/log'`;
// With config fail=true, create and update fail after reading the secret stdin: the provider's error text
// then holds the script, which must hold no secret.
const failing = config.getBoolean("fail") ? `echo "failing on purpose" >&2; exit 3; ` : "";

const traced = new command.local.Command("traced", {
    create: `${trace("create")}; cat >'${dir}/file'; ${failing}echo "create done"`,
    update: `${trace("update")}; cat >'${dir}/file'; ${failing}echo "update done"`,
    delete: `${trace("delete")}; rm -f '${dir}/file'`,
    stdin: config.requireSecret("content"),
    triggers: [config.get("trigger") ?? "1"],
    addPreviousOutputInEnv: false,
});

export const stdout = traced.stdout;
