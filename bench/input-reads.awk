# input-reads.awk adds up the bytes a traced program read from one file, from
# the output of `strace -f -s 0 -e trace=openat,close,read,pread64,sendfile,copy_file_range`,
# and prints them as a multiple of the file's size (1.00 = read once).
#   awk -v path=FILE -v size=BYTES -f input-reads.awk strace.log
# Descriptors are shared by the threads of a process, so they are keyed by fd
# alone: the traced programs are single processes.

# A call another thread interrupted is split in two lines: "<unfinished ...>"
# holds the arguments and "<... NAME resumed>" the result, on the same pid.
/<unfinished \.\.\.>/ {
	parse($0)
	pending_call[$1] = call; pending_fd[$1] = fd; pending_path[$1] = index($0, quoted) > 0
	next
}
/resumed>/ {
	call = pending_call[$1]; fd = pending_fd[$1]; ispath = pending_path[$1]
	account()
	next
}
{
	parse($0)
	ispath = index($0, quoted) > 0
	account()
}

BEGIN { quoted = "\"" path "\"" }

# parse sets call to the system call's name and fd to the descriptor read
# from: the first argument, or the second for sendfile/copy_file_range.
function parse(line,   rest, args) {
	call = ""; fd = ""
	if (!match(line, /[a-z_0-9]+\(/)) return
	call = substr(line, RSTART, RLENGTH - 1)
	rest = substr(line, RSTART + RLENGTH)
	split(rest, args, ", ")
	fd = (call == "sendfile" || call == "copy_file_range") ? args[2] : args[1]
	sub(/[^0-9].*/, "", fd)
}

function account(   ret) {
	ret = $NF
	if (ret !~ /^[0-9]+$/) return
	if (call == "openat") { if (ispath) open[ret] = 1; return }
	if (call == "close") { delete open[fd]; return }
	if (fd in open) total += ret
}

END { printf "%.2f\n", total / size }
