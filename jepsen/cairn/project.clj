; The Jepsen test of Cairn (jepsen/cairn/README.md). The Jepsen version is
; the one jepsen-io/etcd pins (0.3.11), so that the Clojure, Knossos and Elle
; versions come as a pairing that is known to work together; cheshire is the
; JSON codec of the HTTP client (5.11.0 is also what Debian 12 packages).
(defproject jepsen.cairn "0.1.0"
  :description "Jepsen test of Cairn, a replicated configuration store"
  :license {:name "EPL-2.0"
            :url "https://www.eclipse.org/legal/epl-2.0/"}
  :dependencies [[jepsen "0.3.11"]
                 [cheshire "5.11.0"]]
  :main jepsen.cairn
  :jvm-opts ["-Djava.awt.headless=true"
             "-Djava.net.preferIPv4Stack=true"
             "-server"
             "-Xmx8g"]
  :repl-options {:init-ns jepsen.cairn}
  :profiles {:uberjar {:target-path "target/uberjar"
                       :aot :all}})
