// Writes Pulumi.yaml from components/config.ts (npm run gen:project).
import * as fs from "fs";
import * as path from "path";
import { renderProjectFile } from "../components/projectFile";

fs.writeFileSync(path.join(__dirname, "..", "Pulumi.yaml"), renderProjectFile());
