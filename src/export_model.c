// Our own model.bin as an export target (docs/export.md, docs/format.md): the
// model as infer_llama reads it, with fp32 or bf16 weights (--dtype). This is
// the converter between the two, and takes a model out of a checkpoint or a
// llama2.c checkpoint (which then needs -z's tokenizer at infer_llama).
#include <stdio.h>

#include "export.h"
#include "modelio.h"

int model_export(const Model *m, const ExportArgs *a, Error *err) {
    if (export_check(m, EXPORT_MODEL, a->out, err) ||
        output_check_ours(a->out, "a model file of this project", model_probe, NULL, err))
        return -1;
    int dtype = a->dtype == OUT_BF16 ? DTYPE_BF16 : DTYPE_F32; // the row takes no fp16 (export_llama refuses it)
    int rc = model_save_as(m, dtype, a->out, err);
    if (!rc) fprintf(stderr, "wrote %s (model.bin, %s weights)\n", a->out, dtype_name(dtype));
    return rc;
}
