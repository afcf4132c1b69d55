# Types for compiling frames.py with Cython (setup.py does when Cython is available); the
# .py file stays plain Python and is what runs without a compiler.
cimport cython


cdef class FrameReader:
    cdef public bytes _buf
    cdef public Py_ssize_t frame_max

    @cython.locals(buf=bytes, frames=list, off=Py_ssize_t, n=Py_ssize_t, limit=Py_ssize_t, ftype=int,
                   channel=int, size=Py_ssize_t, end=Py_ssize_t, whole=Py_ssize_t, h=Py_ssize_t,
                   hend=Py_ssize_t, acks=list, acks_channel=int, i=Py_ssize_t,
                   tag=cython.ulonglong)
    cpdef list feed(self, bytes data, bint publishes=*)

    @cython.locals(h=Py_ssize_t, hsize=Py_ssize_t, hend=Py_ssize_t, b=Py_ssize_t,
                   bsize=Py_ssize_t, bend=Py_ssize_t)
    cdef Py_ssize_t _whole_publish(self, bytes buf, Py_ssize_t off, Py_ssize_t end, int channel, Py_ssize_t n,
                                   Py_ssize_t limit)


@cython.locals(stop=Py_ssize_t)
cdef Py_ssize_t _shortstr_end(bytes buf, Py_ssize_t off, Py_ssize_t end) except -1

@cython.locals(stop=Py_ssize_t, size=Py_ssize_t)
cdef Py_ssize_t _long_end(bytes buf, Py_ssize_t off, Py_ssize_t end) except -1

@cython.locals(table=bint, outer=list, kind=int, size=Py_ssize_t, mask=int, inner=Py_ssize_t)
cdef Py_ssize_t _table_end(bytes buf, Py_ssize_t off, Py_ssize_t stop) except -1

cpdef tuple peek_delivery(bytes header)

@cython.locals(end=Py_ssize_t, flags=int, off=Py_ssize_t, stop=Py_ssize_t, mode=int, priority=int, flag=int)
cdef tuple _peek_delivery(bytes header)
