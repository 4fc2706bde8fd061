module github.com/switchyard/switchyard/scripts/arch

go 1.26.8
