"""Generic operators: synthetic sources, element-wise maths and summary sinks (hello_stream's parts)."""
