/* formats.c - the table of runtime weight formats (formats.h) as the public interface reads it. */
#include "internal.h"

const char *wren_format_name(int format) { return wren_format_ok(format) ? wren_formats[format].name : NULL; }
size_t wren_format_block_bytes(int format) {
    return wren_format_ok(format) ? (size_t)wren_formats[format].block_bytes : 0;
}
int wren_format_block_weights(int format) { return wren_format_ok(format) ? wren_formats[format].block_weights : 0; }

int wren_format_describe(int format, wren_format_info *out) {
    if (!out) return WREN_E_NULL;
    if (!wren_format_ok(format)) return WREN_E_FORMAT;
    const wren_format_traits *f = &wren_formats[format];
    *out = (wren_format_info){f->name, f->block_weights, f->block_bytes, f->bits, f->tile_row_bytes, f->act_group,
                              f->file_type, f->convert_from, f->quantize != NULL};
    return WREN_OK;
}
