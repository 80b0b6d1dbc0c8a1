module breakwater.dev/bench/streams

go 1.22
