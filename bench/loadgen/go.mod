module dlr/loadgen

go 1.22
