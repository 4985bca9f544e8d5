/*
 * Every private declaration at once, for code that looks inside the
 * library from outside its layers (the fuzz targets, in-process unit
 * tests). The library's own files include their layer's header instead:
 * base/base.h, base/clock.h, sched/sched.h, io/io.h, transport/transport.h,
 * filter/proxy_header.h, dispatch/dispatch.h, core/core.h; objects.h holds
 * the server and request layouts. Each header includes the layers below it.
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include "core/core.h"
#include "filter/proxy_header.h"

#endif /* SS_INTERNAL_H */
