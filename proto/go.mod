module github.com/switchyard/switchyard/proto

go 1.26.8
