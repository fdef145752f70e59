/*
 * _samplehook.c - the per-sample timing of trainio's DataLoader hooks, in C.
 *
 * A sample is one dataset[i] call (TimedDataset, standing in for a map-style
 * dataset during one fetch) or one item of an iterable dataset's iterator
 * (TimedIter).  Each is packed as 7 int64: index (-1 unknown), start and end
 * in ns from the fetch's start (`base`), then the thread's CPU time, minor and
 * major faults and bytes read from storage over the call, or -1 each when the
 * sample was not measured.  A sample is measured when the low bits of its
 * start fall below `threshold` (0..1024): tracer/usage.py's SampleGate.
 *
 * Optional: tracer/torch_hooks.py has the same classes in Python for an
 * interpreter this was not built for.  Same layout (spool.SAMPLE), same rules.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define GATE_MASK 1023
#define FIELDS 7

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* cpu_ns, minflt, majflt, read_bytes of the calling thread; `exact`: the
 * kernel keeps getrusage's thread CPU time exact (else the thread's clock). */
static void usage(int exact, int64_t out[4])
{
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    if (exact) {
        out[0] = ((int64_t)r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000000LL +
                 ((int64_t)r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1000LL;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        out[0] = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    out[1] = r.ru_minflt;
    out[2] = r.ru_majflt;
    out[3] = (int64_t)r.ru_inblock * 512;
}

/* ---- the packed samples, shared by both types ---- */

typedef struct {
    int64_t *data;
    Py_ssize_t n, cap; /* samples */
} Samples;

static int samples_add(Samples *s, int64_t index, int64_t start, int64_t end, const int64_t *used)
{
    if (s->n == s->cap) {
        Py_ssize_t cap = s->cap ? 2 * s->cap : 64;
        int64_t *grown = PyMem_Realloc(s->data, (size_t)cap * FIELDS * sizeof(int64_t));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        s->data = grown;
        s->cap = cap;
    }
    int64_t *row = s->data + s->n * FIELDS;
    row[0] = index;
    row[1] = start;
    row[2] = end;
    memcpy(row + 3, used, 4 * sizeof(int64_t));
    s->n++;
    return 0;
}

/* The samples so far as bytes (native order: little-endian where trainio runs); emptied. */
static PyObject *samples_take(Samples *s)
{
    PyObject *out = PyBytes_FromStringAndSize((const char *)s->data, s->n * FIELDS * (Py_ssize_t)sizeof(int64_t));
    if (out) s->n = 0;
    return out;
}

static const int64_t NOT_MEASURED[4] = {-1, -1, -1, -1};

/* Times `call(arg)` as one sample; NULL (with the call's exception) when it raised. */
static PyObject *timed_call(PyObject *(*call)(PyObject *, PyObject *), PyObject *target, PyObject *arg,
                            int64_t base, int threshold, int exact, int64_t index, Samples *samples)
{
    int64_t start = now_ns() - base, u0[4], u1[4], used[4];
    int measured = (start & GATE_MASK) < threshold;
    if (measured) usage(exact, u0);
    PyObject *item = call(target, arg);
    if (!item) return NULL;
    if (measured) {
        usage(exact, u1);
        for (int i = 0; i < 4; i++) used[i] = u1[i] - u0[i];
    }
    if (samples_add(samples, index, start, now_ns() - base, measured ? used : NOT_MEASURED) < 0) {
        Py_DECREF(item);
        return NULL;
    }
    return item;
}

/* ---- TimedDataset ---- */

typedef struct {
    PyObject_HEAD
    PyObject *dataset;
    long long base;
    int threshold, exact;
    Samples samples;
} TimedDataset;

static int td_init(TimedDataset *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"dataset", "threshold", "base", "exact", NULL};
    PyObject *dataset;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiLp", names, &dataset, &self->threshold, &self->base, &self->exact))
        return -1;
    Py_INCREF(dataset);
    Py_XSETREF(self->dataset, dataset);
    return 0;
}

static void td_dealloc(TimedDataset *self)
{
    Py_XDECREF(self->dataset);
    PyMem_Free(self->samples.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *td_getitem(TimedDataset *self, PyObject *key)
{
    int64_t index = -1;
    if (PyLong_CheckExact(key)) {
        int overflow;
        index = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (overflow || (index == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            index = -1;
        }
    }
    return timed_call(PyObject_GetItem, self->dataset, key, self->base, self->threshold, self->exact, index,
                      &self->samples);
}

static Py_ssize_t td_len(TimedDataset *self) { return PyObject_Length(self->dataset); }

static PyObject *td_take(TimedDataset *self, PyObject *unused) { return samples_take(&self->samples); }

static PyObject *td_getitems(TimedDataset *self, void *closure) { Py_RETURN_NONE; }

static PyMappingMethods td_mapping = {(lenfunc)td_len, (binaryfunc)td_getitem, NULL};
static PyMethodDef td_methods[] = {
    {"take", (PyCFunction)td_take, METH_NOARGS, "The packed samples so far (bytes); empties them."},
    {NULL}};
static PyGetSetDef td_getset[] = {
    /* None: torch's fetcher then calls __getitem__ per index */
    {"__getitems__", (getter)td_getitems, NULL, NULL, NULL},
    {NULL}};

static PyTypeObject TimedDatasetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trainio.tracer._samplehook.TimedDataset",
    .tp_doc = "Stands in for a map-style dataset during one fetch: each dataset[i] is a timed sample.",
    .tp_basicsize = sizeof(TimedDataset),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)td_init,
    .tp_dealloc = (destructor)td_dealloc,
    .tp_as_mapping = &td_mapping,
    .tp_methods = td_methods,
    .tp_getset = td_getset,
};

/* ---- TimedIter ---- */

typedef struct {
    PyObject_HEAD
    PyObject *it;
    long long base, index;
    int threshold, exact, batched;
    Samples samples;
} TimedIter;

static int ti_init(TimedIter *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"iterator", "threshold", "batched", "exact", NULL};
    PyObject *it;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oiip", names, &it, &self->threshold, &self->batched, &self->exact))
        return -1;
    Py_INCREF(it);
    Py_XSETREF(self->it, it);
    return 0;
}

static void ti_dealloc(TimedIter *self)
{
    Py_XDECREF(self->it);
    PyMem_Free(self->samples.data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *next_of(PyObject *it, PyObject *unused) { return PyIter_Next(it); }

static PyObject *ti_next(TimedIter *self)
{
    PyObject *item = timed_call(next_of, self->it, NULL, self->base, self->threshold, self->exact, self->index,
                                &self->samples);
    if (item) self->index++;
    return item; /* NULL without an exception: the iterator is exhausted */
}

static PyObject *ti_take(TimedIter *self, PyObject *unused) { return samples_take(&self->samples); }

static PyMethodDef ti_methods[] = {
    {"take", (PyCFunction)ti_take, METH_NOARGS, "The packed samples so far (bytes); empties them."},
    {NULL}};
static PyMemberDef ti_members[] = {
    {"base", T_LONGLONG, offsetof(TimedIter, base), 0, "the current fetch's start (ns)"},
    {"threshold", T_INT, offsetof(TimedIter, threshold), 0, "the gate's threshold for this fetch"},
    {"index", T_LONGLONG, offsetof(TimedIter, index), READONLY, "items yielded so far"},
    {"batched", T_INT, offsetof(TimedIter, batched), READONLY, "batch size inside the dataset (0: none)"},
    {NULL}};

static PyTypeObject TimedIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "trainio.tracer._samplehook.TimedIter",
    .tp_doc = "Stands in for an iterable dataset's iterator: each item it yields is a timed sample.",
    .tp_basicsize = sizeof(TimedIter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ti_init,
    .tp_dealloc = (destructor)ti_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ti_next,
    .tp_methods = ti_methods,
    .tp_members = ti_members,
};

/* tracer/usage.py's thread_usage without a Python frame or a struct_rusage: (cpu_ns, minflt, majflt, read_bytes). */
static PyObject *thread_usage(PyObject *module, PyObject *exact)
{
    int64_t u[4];
    int flag = PyObject_IsTrue(exact);
    if (flag < 0) return NULL;
    usage(flag, u);
    return Py_BuildValue("(LLLL)", (long long)u[0], (long long)u[1], (long long)u[2], (long long)u[3]);
}

static PyMethodDef module_methods[] = {
    {"thread_usage", (PyCFunction)thread_usage, METH_O,
     "thread_usage(exact) -> (cpu_ns, minflt, majflt, read_bytes) of the calling thread so far."},
    {NULL}};

static struct PyModuleDef samplehook = {
    PyModuleDef_HEAD_INIT, "_samplehook", "Per-sample timing in C.", -1, module_methods};

PyMODINIT_FUNC PyInit__samplehook(void)
{
    if (PyType_Ready(&TimedDatasetType) < 0 || PyType_Ready(&TimedIterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&samplehook);
    if (!m) return NULL;
    Py_INCREF(&TimedDatasetType);
    Py_INCREF(&TimedIterType);
    if (PyModule_AddObject(m, "TimedDataset", (PyObject *)&TimedDatasetType) < 0 ||
        PyModule_AddObject(m, "TimedIter", (PyObject *)&TimedIterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
