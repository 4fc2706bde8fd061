module github.com/switchyard/switchyard/scripts/configdoc

go 1.26.8
