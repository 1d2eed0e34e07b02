// llama.cpp (through node-llama-cpp, CPU only) against our forward pass:
//   node test/test_gguf.mjs MODULE_DIR CASES.json
// CASES.json: [{"gguf": FILE, "ref": FILE, "text": FILE, "tokens": [ids]}, ...];
// ref is build/export_ref's output for the tokens (our logits at every
// position, our greedy continuation). Prints one JSON line per case: the worst
// difference of the last position's log-probabilities (llama.cpp gives
// probabilities: logits up to a constant), llama.cpp's greedy tokens, its
// tokens of the text file, and whether it detokenizes them back to the text.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [moduleDir, casesPath] = process.argv.slice(2);
const {getLlama, LlamaLogLevel} = await import(
    pathToFileURL(path.join(moduleDir, "node_modules/node-llama-cpp/dist/index.js")).href);

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false});
for (const c of JSON.parse(fs.readFileSync(casesPath, "utf8"))) {
    const ref = JSON.parse(fs.readFileSync(c.ref, "utf8"));
    const tokens = c.tokens, modelPath = c.gguf, textPath = c.text;
    const model = await llama.loadModel({modelPath, gpuLayers: 0});
    // full precision: an F32 KV cache and no flash attention (llama.cpp's CPU flash attention
    // rounds to F16 inside: it alone moved the log-probabilities by up to 7e-4, against 2e-6 without)
    const ctx = await model.createContext({contextSize: model.trainContextSize, batchSize: 64, threads: 1,
                                           experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
                                           flashAttention: false});
    const seq = ctx.getSequence();

    // greedy decoding, one token at a time (a loop of our own: nothing stops at an end-of-text token)
    const greedy = [];
    let input = tokens;
    for (let i = 0; i < ref.greedy.length; i++) {
        const items = input.map((t, j) => j < input.length - 1 ? t :
            [t, {generateNext: {token: true, options: {temperature: 0}}}]);
        const out = await seq.controlledEvaluate(items);
        greedy.push(out[out.length - 1].next.token);
        input = [greedy[i]];
    }
    // the next-token distribution after the sequence, at temperature 1 with no truncation: softmax(logits)
    await seq.clearHistory();
    const items = tokens.map((t, j) => j < tokens.length - 1 ? t :
        [t, {generateNext: {probabilities: true, options: {temperature: 1, topK: 0, topP: 1, minP: 0}}}]);
    const probs = (await seq.controlledEvaluate(items))[tokens.length - 1].next.probabilities;
    const last = ref.logits[ref.logits.length - 1], max = Math.max(...last);
    const lse = max + Math.log(last.reduce((s, x) => s + Math.exp(x - max), 0));
    let worst = 0, compared = 0;
    for (let v = 0; v < last.length; v++) {
        const p = probs.get(v);
        if (p === undefined || p <= 0) continue; // below float32's range
        worst = Math.max(worst, Math.abs(Math.log(p) - (last[v] - lse)));
        compared++;
    }
    const text = fs.readFileSync(textPath, "utf8");
    const ids = Array.from(model.tokenize(text));
    console.log(JSON.stringify({worst, compared, greedy, text_ids: ids.join(" "),
                                detokenized: model.detokenize(ids) === text}));
    await model.dispose();
}
await llama.dispose();
