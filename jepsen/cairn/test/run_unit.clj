;; Runs the unit tests of the pure namespaces (no Jepsen needed) with
;; Debian's clojure package:
;;
;;   clojure -cp src:test test/run_unit.clj
;;
;; Exit status 0 when every test passes.
(require 'clojure.test
         'jepsen.cairn.errors-test
         'jepsen.cairn.watch-log-test)

(let [{:keys [fail error]} (clojure.test/run-tests 'jepsen.cairn.errors-test
                                                   'jepsen.cairn.watch-log-test)]
  (shutdown-agents)
  (System/exit (if (zero? (+ fail error)) 0 1)))
